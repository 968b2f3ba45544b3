# Mask R-CNN with a HAT-Net-Tiny backbone on COCO, 1x schedule (recipe: ../_base_/det/hatnet_1x.py).
# No official config (no HAT-Net detection code was released): the paper's COCO settings, which
# follow PVT's. Published: Mask R-CNN 1x box/mask AP 43.1 / 39.7.
_base_ = [
    '../_base_/det/maskrcnn.py',
    '../_base_/det/hatnet_1x.py',
    '../_base_/backbones/hatnet_tiny.py',
]
model = dict(backbone={{_base_.backbone}}, neck=dict(in_channels={{_base_.backbone_channels}}))
