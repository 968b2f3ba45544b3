# Semantic FPN with a TransCNN-Small (v1) backbone on ADE20K (recipe: ../_base_/seg/fpn_80k.py).
# Published: none (no dense-prediction result was published for TransCNN v1).
_base_ = [
    '../_base_/seg/fpn_80k.py',
    '../_base_/backbones/transcnn_small.py',
]
model = dict(
    backbone={{_base_.backbone}},
    neck=dict(in_channels={{_base_.backbone_channels}}))
