# UPerNet with a VAN-B2 backbone on ADE20K (recipe: ../_base_/seg/upernet_van_160k.py). Official
# config:
# Visual-Attention-Network/VAN-Segmentation@8285fc7ad39e7944d5f25ba132f1cdfdce7d865d:configs/upernet/1k_pretrained/upernet_van_b2_512x512_160k_ade20k.py.
# Its backbone as the newer VAN code that wrote the UPerNet files (SyncBN, stage-ending LayerNorms
# with eps 1e-5: upernet_van_code). Published mIoU: 50.1 (multi-scale, `--tta`; mmseg single-scale
# 49.35).
_base_ = [
    '../_base_/seg/upernet_van_160k.py',
    '../_base_/backbones/van_b2.py',
]
model = dict(
    backbone=dict(_base_.backbone, **_base_.upernet_van_code, drop_path_rate=0.1),
    decode_head=dict(in_channels={{_base_.backbone_channels}}),
    auxiliary_head=dict(in_channels={{_base_.backbone_stage3_channels}}))
