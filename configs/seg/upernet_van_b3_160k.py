# UPerNet with a VAN-B3 backbone on ADE20K (recipe: ../_base_/seg/upernet_van_160k.py). Published
# mIoU: 50.6 (multi-scale; mmseg single-scale 49.71).
_base_ = [
    '../_base_/seg/upernet_van_160k.py',
    '../_base_/backbones/van_b3.py',
]
model = dict(
    backbone={{_base_.backbone}},
    decode_head=dict(in_channels={{_base_.backbone_channels}}),
    auxiliary_head=dict(in_channels={{_base_.backbone_stage3_channels}}))
