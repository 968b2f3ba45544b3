# UPerNet with a UniFormer-B backbone trained with global attention in stages 3 and 4 on ADE20K
# (recipe: ../_base_/seg/upernet_160k.py), tested global as well. Official config:
# Sense-X/UniFormer@52a0415e4e0dda880fab8ffbc710e4d8e171149d:semantic_segmentation/exp/upernet_global_base/config.py
# (= its test_config_g; drop path 0.4). The same trained file tested with 32x32 windows:
# ./upernet_uniformer_b_160k_w32.py, hybrid: ./upernet_uniformer_b_160k_h32.py. Published mIoU,
# single scale (multi-scale, `--tta`): 50.0 (50.8).
_base_ = [
    '../_base_/seg/upernet_160k.py',
    '../_base_/backbones/uniformer_b.py',
]
model = dict(
    backbone=dict(_base_.backbone, drop_path_rate=0.4, attn_modes=('global', 'global')),
    decode_head=dict(in_channels={{_base_.backbone_channels}}),
    auxiliary_head=dict(in_channels={{_base_.backbone_stage3_channels}}))
