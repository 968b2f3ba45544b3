# UPerNet UniFormer-S trained global (./upernet_uniformer_s_160k_g.py, the same file), tested with
# hybrid attention in stage 3 (32x32 windows, block i global when (i + 1) % 4 == 0; stage 4 global).
# Official config:
# Sense-X/UniFormer@52a0415e4e0dda880fab8ffbc710e4d8e171149d:semantic_segmentation/exp/upernet_global_small/test_config_h32.py.
# Published mIoU, single scale (multi-scale, `--tta`): 47.0 (48.5).
_base_ = ['./upernet_uniformer_s_160k_g.py']
model = dict(backbone=dict(attn_modes=('hybrid', 'global'), window_size=32))
