# Semantic FPN UniFormer-B trained global (./fpn_uniformer_b_80k_g.py, the same file), tested with
# window attention in stage 3 (32x32 windows; stage 4 global). Official config:
# Sense-X/UniFormer@52a0415e4e0dda880fab8ffbc710e4d8e171149d:semantic_segmentation/fpn_seg/exp/fpn_global_base/test_config_w32.py.
# Published mIoU (single scale): 47.0.
_base_ = ['./fpn_uniformer_b_80k_g.py']
model = dict(backbone=dict(attn_modes=('window', 'global'), window_size=32))
