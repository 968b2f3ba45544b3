# UPerNet with a VAN-B4 (ImageNet-22k pretrained) backbone on ADE20K (recipe:
# ../_base_/seg/upernet_van_160k_bs32.py). Official config:
# Visual-Attention-Network/VAN-Segmentation@8285fc7ad39e7944d5f25ba132f1cdfdce7d865d:configs/upernet/22k_pretrained/upernet_van_b4_512x512_160k_ade20k_22k.py.
# Its backbone as the newer VAN code that wrote the UPerNet files (SyncBN, stage-ending LayerNorms
# with eps 1e-5: upernet_van_code). Published mIoU: 53.5 (multi-scale, `--tta`).
_base_ = [
    '../_base_/seg/upernet_van_160k_bs32.py',
    '../_base_/backbones/van_b4_in22k.py',
]
model = dict(
    backbone=dict(_base_.backbone, **_base_.upernet_van_code),
    decode_head=dict(in_channels={{_base_.backbone_channels}}),
    auxiliary_head=dict(in_channels={{_base_.backbone_stage3_channels}}))
