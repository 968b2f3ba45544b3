# Semantic FPN with a CrossFormer++-S backbone on ADE20K (recipe: ../_base_/seg/fpn_crossformer_80k.py:
# CrossFormer's training and test, which the main branch keeps). Official config:
# cheerss/CrossFormer@795201075f0066e78408882617312084e25aef61:segmentation/configs/crossformer_pp/fpn_crossformerpp_s_ade20k_40k.py
# (80k iterations; group size 7 and intervals 8, 4, 2, 1, unlike CrossFormer-S's FPN; test
# segmentation/configs/_base_/datasets/ade20k.py: AlignResize(size_divisor=32), single scale, no
# flip). Published (main README) mIoU (single scale): 47.4; no trained model released.
_base_ = [
    '../_base_/seg/fpn_crossformer_80k.py',
    '../_base_/backbones/crossformerpp_s.py',
]
model = dict(
    backbone={{_base_.backbone}},
    neck=dict(in_channels={{_base_.backbone_channels}}))
