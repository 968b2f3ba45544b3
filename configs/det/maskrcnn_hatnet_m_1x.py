# Mask R-CNN with a HAT-Net-Medium backbone on COCO, 1x schedule (recipe:
# ../_base_/det/hatnet_1x.py). No official config (no HAT-Net detection code was released): the
# paper's COCO settings, which follow PVT's. Published: Mask R-CNN 1x box/mask AP 47.0 / 42.7.
_base_ = [
    '../_base_/det/maskrcnn.py',
    '../_base_/det/hatnet_1x.py',
    '../_base_/backbones/hatnet_medium.py',
]
model = dict(backbone={{_base_.backbone}}, neck=dict(in_channels={{_base_.backbone_channels}}))
