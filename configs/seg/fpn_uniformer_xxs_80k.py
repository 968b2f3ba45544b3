# Semantic FPN with a UniFormer-light XXS backbone on ADE20K (recipe:
# ../_base_/seg/fpn_uniformer_80k.py). Official config:
# Sense-X/UniFormer@52a0415e4e0dda880fab8ffbc710e4d8e171149d:semantic_segmentation/fpn_seg/exp_light/fpn_xxs/config.py
# (drop path 0, as the backbone file). Published mIoU (single scale): 42.3.
_base_ = [
    '../_base_/seg/fpn_uniformer_80k.py',
    '../_base_/backbones/uniformer_xxs.py',
]
model = dict(backbone={{_base_.backbone}}, neck=dict(in_channels={{_base_.backbone_channels}}))
