# Semantic FPN with a VAN-B2 backbone on ADE20K (recipe: ../_base_/seg/fpn_van_40k.py). Published
# mIoU (single scale): 46.7 (46.84).
_base_ = [
    '../_base_/seg/fpn_van_40k.py',
    '../_base_/backbones/van_b2.py',
]
model = dict(
    backbone={{_base_.backbone}},
    neck=dict(in_channels={{_base_.backbone_channels}}))
