# RetinaNet with a HAT-Net-Small backbone on COCO, 1x schedule (recipe: ../_base_/det/hatnet_1x.py).
# No official config (no HAT-Net detection code was released): the paper's COCO settings, which
# follow PVT's. Published: RetinaNet 1x box AP 44.8.
_base_ = [
    '../_base_/det/retinanet.py',
    '../_base_/det/hatnet_1x.py',
    '../_base_/backbones/hatnet_small.py',
]
model = dict(backbone={{_base_.backbone}}, neck=dict(in_channels={{_base_.backbone_channels}}))
