# Semantic FPN with a UniFormer-B backbone (hybrid, window 14) on ADE20K (512x512 crops),
# 80k iterations at batch 32 (8 GPUs x 4). Official recipe (Sense-X/UniFormer,
# semantic_segmentation/fpn_seg/exp/fpn_hybrid_base/config.py): drop path 0.2, AdamW lr 2e-4,
# weight decay 1e-4, 1000-iteration linear warm-up from 0.1, cosine annealing to 1e-8 x lr.
# Published mIoU (single scale): 47.0.
_base_ = [
    'mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py',
    '../_base_/backbones/uniformer_b.py',
]
model = dict(
    pretrained=None,
    backbone=dict(_base_.backbone, drop_path_rate=0.2),
    neck=dict(in_channels={{_base_.backbone_channels}}))
train_dataloader = dict(batch_size=4)  # x 8 GPUs = 32
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4),
    clip_grad=None)
# mmcv 1.x `warmup` scaled the cosine schedule's lr during the first 1000 iterations: the two
# schedulers overlap.
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=1000),
    dict(type='CosineAnnealingLR', T_max=80000, eta_min_ratio=1e-8, begin=0, end=80000,
         by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=80000, val_interval=8000)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=8000))
