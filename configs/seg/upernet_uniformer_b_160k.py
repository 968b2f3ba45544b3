# UPerNet with a UniFormer-B backbone on ADE20K (recipe: ../_base_/seg/upernet_160k.py). Official
# config:
# Sense-X/UniFormer@52a0415e4e0dda880fab8ffbc710e4d8e171149d:semantic_segmentation/exp/upernet_hybrid_base/config.py
# (drop path: below). Published mIoU (single scale): 48.9.
_base_ = [
    '../_base_/seg/upernet_160k.py',
    '../_base_/backbones/uniformer_b.py',
]
model = dict(
    backbone=dict(_base_.backbone, drop_path_rate=0.4),
    decode_head=dict(in_channels={{_base_.backbone_channels}}),
    auxiliary_head=dict(in_channels={{_base_.backbone_stage3_channels}}))
