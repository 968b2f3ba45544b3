# Semantic FPN with a CrossFormer-B backbone on ADE20K (recipe:
# ../_base_/seg/fpn_crossformer_80k.py). Official config:
# cheerss/CrossFormer@4fbf7501d6923f2564e8cb6d08a2d0138fc24a16:segmentation/configs/fpn_crossformer_b_ade20k_40k.py
# (group size 7, intervals 8, 4, 2, 1). Published mIoU (single scale): 48.0.
_base_ = [
    '../_base_/seg/fpn_crossformer_80k.py',
    '../_base_/backbones/crossformer_b.py',
]
model = dict(
    backbone={{_base_.backbone}},
    neck=dict(in_channels={{_base_.backbone_channels}}))
