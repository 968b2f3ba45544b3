# Semantic FPN with a VAN-B0 backbone on ADE20K (recipe: ../_base_/seg/fpn_van_40k.py). Published
# mIoU (single scale): 38.5 (mmseg re-evaluation 38.65).
_base_ = [
    '../_base_/seg/fpn_van_40k.py',
    '../_base_/backbones/van_b0.py',
]
model = dict(
    backbone={{_base_.backbone}},
    neck=dict(in_channels={{_base_.backbone_channels}}))
