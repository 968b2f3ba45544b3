# Mask R-CNN with a CMT-S backbone on COCO, 1x schedule (recipe: ../_base_/det/cmt_1x.py). No
# official config (no CMT detection code was released): the CMT paper's COCO settings, which follow
# PVT's. Published: Mask R-CNN 1x box/mask AP 44.6 / 40.7.
_base_ = [
    '../_base_/det/maskrcnn.py',
    '../_base_/det/cmt_1x.py',
    '../_base_/backbones/cmt_s.py',
]
model = dict(backbone={{_base_.backbone}}, neck=dict(in_channels={{_base_.backbone_channels}}))
