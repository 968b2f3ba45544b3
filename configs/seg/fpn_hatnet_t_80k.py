# Semantic FPN with a HAT-Net-Tiny backbone on ADE20K (recipe: ../_base_/seg/fpn_80k.py). No
# official config (no segmentation code was released): PVT's Semantic FPN recipe, which the paper
# follows. Published: Semantic FPN mIoU 43.6.
_base_ = [
    '../_base_/seg/fpn_80k.py',
    '../_base_/backbones/hatnet_tiny.py',
]
model = dict(
    backbone={{_base_.backbone}},
    neck=dict(in_channels={{_base_.backbone_channels}}))
