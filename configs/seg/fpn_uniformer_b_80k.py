# Semantic FPN with a UniFormer-B backbone on ADE20K (recipe: ../_base_/seg/fpn_uniformer_80k.py).
# Official config:
# Sense-X/UniFormer@52a0415e4e0dda880fab8ffbc710e4d8e171149d:semantic_segmentation/fpn_seg/exp/fpn_hybrid_base/config.py
# (drop path: below). Published mIoU (single scale): 47.0.
_base_ = [
    '../_base_/seg/fpn_uniformer_80k.py',
    '../_base_/backbones/uniformer_b.py',
]
model = dict(
    backbone=dict(_base_.backbone, drop_path_rate=0.2),
    neck=dict(in_channels={{_base_.backbone_channels}}))
