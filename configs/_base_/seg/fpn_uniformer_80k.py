# UniFormer's Semantic FPN recipe: 80k iterations at batch 32 (8 GPUs x 4). Official
# (Sense-X/UniFormer, semantic_segmentation/fpn_seg/exp/fpn_hybrid_{small,base}/config.py): AdamW
# lr 2e-4, weight decay 1e-4, 1000-iteration linear warm-up from 0.1, cosine annealing to
# 1e-8 x lr. The drop path (S 0.1, B 0.2) is set by each leaf.
_base_ = ['./fpn_80k.py']
train_dataloader = dict(batch_size=4)  # x 8 GPUs = 32
auto_scale_lr = dict(base_batch_size=32)
optim_wrapper = dict(optimizer=dict(lr=2e-4))
# mmcv 1.x `warmup` scaled the cosine schedule's lr during the first 1000 iterations: the two
# schedulers overlap.
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=1000),
    dict(type='CosineAnnealingLR', T_max=80000, eta_min_ratio=1e-8, begin=0, end=80000,
         by_epoch=False),
]
# Test (official fpn_seg/configs/_base_/datasets/ade20k.py): `AlignResize`, i.e. the image
# resized up to a multiple of 32, whole-image inference.
val_dataloader = dict(dataset=dict(pipeline=_base_.align32_test_pipeline))
test_dataloader = val_dataloader
tta_pipeline = _base_.align32_ms_flip_tta_pipeline
