# UniFormer-S backbone as the official detection/segmentation code runs it (REFERENCE.md §2):
# hybrid stage 3 (block i global when (i + 1) % 4 == 0, 14x14 windows otherwise), global stage 4,
# a new LayerNorm (eps 1e-6) on each output. Drop path 0.2 as the official
# object_detection/exp/mask_rcnn_1x_hybrid_small/config.py (the segmentation configs set
# their own).
# ImageNet file: the authors' `uniformer_small_in1k.pth` (Sense-X/UniFormer image_classification
# README), loaded and converted in memory; see the README for where to get it.
custom_imports = dict(imports=['mmhybrid'], allow_failed_imports=False)
backbone_channels = [64, 128, 320, 512]  # the only place these are written
backbone_stage3_channels = backbone_channels[2]
backbone = dict(
    _delete_=True,
    type='mmhybrid.UniFormer',
    arch='small',
    attn_modes=('hybrid', 'global'),
    window_size=14,
    drop_path_rate=0.2,
    init_cfg=dict(type='Pretrained', checkpoint='pretrained/uniformer_small_in1k.pth'))
