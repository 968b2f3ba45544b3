# Semantic FPN with a VAN-B3 backbone on ADE20K (recipe: ../_base_/seg/fpn_van_40k.py). Published
# mIoU (single scale): 48.1 (48.32).
_base_ = [
    '../_base_/seg/fpn_van_40k.py',
    '../_base_/backbones/van_b3.py',
]
model = dict(
    backbone={{_base_.backbone}},
    neck=dict(in_channels={{_base_.backbone_channels}}))
