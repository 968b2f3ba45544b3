# Semantic FPN with a TransCNN-Small (v1) backbone on ADE20K (recipe: ../_base_/seg/fpn_80k.py). No
# official config (no segmentation code was released): PVT's Semantic FPN recipe, which the HAT-Net
# / TransCNN paper follows. Published: none (no dense-prediction result was published for TransCNN
# v1).
_base_ = [
    '../_base_/seg/fpn_80k.py',
    '../_base_/backbones/transcnn_small.py',
]
model = dict(
    backbone={{_base_.backbone}},
    neck=dict(in_channels={{_base_.backbone_channels}}))
