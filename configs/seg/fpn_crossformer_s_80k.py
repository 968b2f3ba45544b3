# Semantic FPN with a CrossFormer-S backbone on ADE20K (recipe:
# ../_base_/seg/fpn_crossformer_80k.py). Official config:
# cheerss/CrossFormer@4fbf7501d6923f2564e8cb6d08a2d0138fc24a16:segmentation/configs/fpn_crossformer_s_ade20k_40k.py
# (group sizes 14, 14, 7, 7, intervals 16, 8, 2, 1). Published mIoU (single scale): 46.4.
_base_ = [
    '../_base_/seg/fpn_crossformer_80k.py',
    '../_base_/backbones/crossformer_s_g14.py',
]
model = dict(
    backbone={{_base_.backbone}},
    neck=dict(in_channels={{_base_.backbone_channels}}))
