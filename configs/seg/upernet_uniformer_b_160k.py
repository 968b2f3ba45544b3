# UPerNet with a UniFormer-B backbone (hybrid, window 14) on ADE20K (512x512 crops), 160k
# iterations at batch 16 (8 GPUs x 2). Official recipe (Sense-X/UniFormer,
# semantic_segmentation/exp/upernet_hybrid_base/config.py): drop path 0.4, AdamW lr 6e-5,
# weight decay 0.01, no decay on norms, 1500-iteration linear warm-up, then poly (power 1.0).
# Published mIoU (single scale): 48.9.
_base_ = [
    'mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py',
    '../_base_/backbones/uniformer_b.py',
]
model = dict(
    pretrained=None,
    backbone=dict(_base_.backbone, drop_path_rate=0.4),
    decode_head=dict(in_channels={{_base_.backbone_channels}}),
    auxiliary_head=dict(in_channels={{_base_.backbone_stage3_channels}}))
train_dataloader = dict(batch_size=2)  # x 8 GPUs = 16
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    # Official custom_keys: 'norm' (the backbone's norms; the heads' BatchNorms are named bn).
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=1.0, eta_min=0.0, begin=1500, end=160000, by_epoch=False),
]
