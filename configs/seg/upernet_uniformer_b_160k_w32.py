# UPerNet UniFormer-B trained global (./upernet_uniformer_b_160k_g.py, the same file), tested with
# window attention in stage 3 (32x32 windows; stage 4 global). Official config:
# Sense-X/UniFormer@52a0415e4e0dda880fab8ffbc710e4d8e171149d:semantic_segmentation/exp/upernet_global_base/test_config_w32.py.
# Published mIoU, single scale (multi-scale, `--tta`): 49.1 (50.6).
_base_ = ['./upernet_uniformer_b_160k_g.py']
model = dict(backbone=dict(attn_modes=('window', 'global'), window_size=32))
