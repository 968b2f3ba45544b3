# RetinaNet with a TransCNN-Small (v1) backbone on COCO, 1x schedule (recipe:
# ../_base_/det/hatnet_1x.py). No official config (no detection code was released): the HAT-Net /
# TransCNN paper's COCO settings, which follow PVT's. Published: none (no dense-prediction result
# was published for TransCNN v1).
_base_ = [
    '../_base_/det/retinanet.py',
    '../_base_/det/hatnet_1x.py',
    '../_base_/backbones/transcnn_small.py',
]
model = dict(backbone={{_base_.backbone}}, neck=dict(in_channels={{_base_.backbone_channels}}))
