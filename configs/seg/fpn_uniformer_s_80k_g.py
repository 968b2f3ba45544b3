# Semantic FPN with a UniFormer-S backbone trained with global attention in stages 3 and 4 on ADE20K
# (recipe: ../_base_/seg/fpn_uniformer_80k.py), tested global as well. Official config:
# Sense-X/UniFormer@52a0415e4e0dda880fab8ffbc710e4d8e171149d:semantic_segmentation/fpn_seg/exp/fpn_global_small/config.py
# (= its test_config_g; drop path 0.1). The same trained file tested with 32x32 windows:
# ./fpn_uniformer_s_80k_w32.py, hybrid: ./fpn_uniformer_s_80k_h32.py. Published mIoU (single scale):
# 46.6.
_base_ = [
    '../_base_/seg/fpn_uniformer_80k.py',
    '../_base_/backbones/uniformer_s.py',
]
model = dict(
    backbone=dict(_base_.backbone, drop_path_rate=0.1, attn_modes=('global', 'global')),
    neck=dict(in_channels={{_base_.backbone_channels}}))
