# Semantic FPN with a VAN-B2 backbone on ADE20K (recipe and backbone settings:
# ../_base_/seg/fpn_van_40k.py). Official config:
# Visual-Attention-Network/VAN-Segmentation@9b9e632a5e5eebdc0add82aa91d6f84b4b8a9e22:configs/sem_fpn/VAN/fpn_van_base_ade20k_40k.py.
# Published mIoU (single scale): 46.7 (46.84).
_base_ = [
    '../_base_/seg/fpn_van_40k.py',
    '../_base_/backbones/van_b2.py',
]
model = dict(
    backbone=dict(_base_.backbone, drop_path_rate=_base_.fpn_van_drop_path_rate),
    neck=dict(in_channels={{_base_.backbone_channels}}))
