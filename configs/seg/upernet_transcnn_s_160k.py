# UPerNet with a TransCNN-Small (v1) backbone on ADE20K (recipe: ../_base_/seg/upernet_160k.py). No
# official config (no UPerNet code was released): Swin's UPerNet recipe. Published: none (no
# dense-prediction result was published for TransCNN v1).
_base_ = [
    '../_base_/seg/upernet_160k.py',
    '../_base_/backbones/transcnn_small.py',
]
model = dict(
    backbone={{_base_.backbone}},
    decode_head=dict(in_channels={{_base_.backbone_channels}}),
    auxiliary_head=dict(in_channels={{_base_.backbone_stage3_channels}}))
