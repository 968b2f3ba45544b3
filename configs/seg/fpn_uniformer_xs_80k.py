# Semantic FPN with a UniFormer-light XS backbone on ADE20K (recipe:
# ../_base_/seg/fpn_uniformer_80k.py). Official config:
# Sense-X/UniFormer@52a0415e4e0dda880fab8ffbc710e4d8e171149d:semantic_segmentation/fpn_seg/exp_light/fpn_xs/config.py
# (drop path: below). Published mIoU (single scale): 44.4.
_base_ = [
    '../_base_/seg/fpn_uniformer_80k.py',
    '../_base_/backbones/uniformer_xs.py',
]
model = dict(
    backbone=dict(_base_.backbone, drop_path_rate=0.1),
    neck=dict(in_channels={{_base_.backbone_channels}}))
