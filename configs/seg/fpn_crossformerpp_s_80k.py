# Semantic FPN with a CrossFormer++-S backbone on ADE20K (recipe: ../_base_/seg/fpn_80k.py, which
# the main branch keeps). Official config (branch `main`):
# segmentation/configs/crossformer_pp/fpn_crossformerpp_s_ade20k_40k.py (80k iterations; group
# size 7 and intervals 8, 4, 2, 1, unlike CrossFormer-S's FPN). Published (main README) mIoU
# (single scale): 47.4; no trained model released.
_base_ = [
    '../_base_/seg/fpn_80k.py',
    '../_base_/backbones/crossformerpp_s.py',
]
model = dict(
    backbone={{_base_.backbone}},
    neck=dict(in_channels={{_base_.backbone_channels}}))
