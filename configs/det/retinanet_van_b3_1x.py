# RetinaNet with a VAN-B3 backbone on COCO, 1x schedule (recipe: ../_base_/det/van_1x.py). No
# official config (no VAN detection code was released): the VAN paper's COCO settings. Published:
# RetinaNet 1x box AP 47.5.
_base_ = [
    '../_base_/det/retinanet.py',
    '../_base_/det/van_1x.py',
    '../_base_/backbones/van_b3.py',
]
model = dict(backbone={{_base_.backbone}}, neck=dict(in_channels={{_base_.backbone_channels}}))
