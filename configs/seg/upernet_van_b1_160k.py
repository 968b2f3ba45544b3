# UPerNet with a VAN-B1 backbone on ADE20K (recipe: ../_base_/seg/upernet_van_160k.py). Published
# mIoU: 44.9 (multi-scale).
_base_ = [
    '../_base_/seg/upernet_van_160k.py',
    '../_base_/backbones/van_b1.py',
]
model = dict(
    backbone={{_base_.backbone}},
    decode_head=dict(in_channels={{_base_.backbone_channels}}),
    auxiliary_head=dict(in_channels={{_base_.backbone_stage3_channels}}))
