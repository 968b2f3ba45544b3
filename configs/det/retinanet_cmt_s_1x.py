# RetinaNet with a CMT-S backbone on COCO, 1x schedule (recipe: ../_base_/det/cmt_1x.py). No
# official config (no CMT detection code was released): the CMT paper's COCO settings, which follow
# PVT's. Published: RetinaNet 1x box AP 44.3.
_base_ = [
    '../_base_/det/retinanet.py',
    '../_base_/det/cmt_1x.py',
    '../_base_/backbones/cmt_s.py',
]
model = dict(backbone={{_base_.backbone}}, neck=dict(in_channels={{_base_.backbone_channels}}))
