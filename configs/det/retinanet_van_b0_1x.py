# RetinaNet with a VAN-B0 backbone on COCO, 1x schedule (recipe: ../_base_/det/van_1x.py). No
# official config (no VAN detection code was released): the VAN paper's COCO settings. Published:
# RetinaNet 1x box AP 38.8.
_base_ = [
    '../_base_/det/retinanet.py',
    '../_base_/det/van_1x.py',
    '../_base_/backbones/van_b0.py',
]
model = dict(backbone={{_base_.backbone}}, neck=dict(in_channels={{_base_.backbone_channels}}))
