# Mask R-CNN with a VAN-B1 backbone on COCO, 1x schedule (recipe: ../_base_/det/van_1x.py). No
# official config (no VAN detection code was released): the VAN paper's COCO settings. Published:
# Mask R-CNN 1x box/mask AP 42.6 / 38.9.
_base_ = [
    '../_base_/det/maskrcnn.py',
    '../_base_/det/van_1x.py',
    '../_base_/backbones/van_b1.py',
]
model = dict(backbone={{_base_.backbone}}, neck=dict(in_channels={{_base_.backbone_channels}}))
