# UPerNet with a VAN-B1 backbone on ADE20K (recipe: ../_base_/seg/upernet_van_160k.py). Official
# config:
# Visual-Attention-Network/VAN-Segmentation@df79bb38:configs/upernet/1k_pretrained/upernet_van_b1_512x512_160k_ade20k.py.
# The UPerNet files come from the newer VAN code, whose stage-ending LayerNorms use eps 1e-5 (the
# Semantic FPN files and the classification code: 1e-6). Published mIoU: 44.9 (multi-scale; no file
# released).
_base_ = [
    '../_base_/seg/upernet_van_160k.py',
    '../_base_/backbones/van_b1.py',
]
model = dict(
    backbone=dict(_base_.backbone, stage_norm_eps=1e-5),
    decode_head=dict(in_channels={{_base_.backbone_channels}}),
    auxiliary_head=dict(in_channels={{_base_.backbone_stage3_channels}}))
