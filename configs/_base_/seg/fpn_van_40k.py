# VAN's Semantic FPN recipe, as the code that wrote the released Semantic FPN files: the commit
# whose README first links them, Visual-Attention-Network/VAN-Segmentation@9b9e632a5e5eebdc0add82aa91d6f84b4b8a9e22
# (configs/sem_fpn/VAN/fpn_van_{tiny,small,base,large}_ade20k_40k.py on
# _base_/datasets/ade20k.py, van.py): AdamW lr 2e-4, weight decay 1e-4, poly (power 0.9),
# 40k iterations at batch 32 (8 GPUs x 4) -- the same budget as the usual 80k at batch 16. Its
# backbone (van.py there, kept by the leaves): drop path 0.1 for B0-B3 alike, plain BatchNorm
# (nn.BatchNorm2d, statistics per GPU), stage-ending LayerNorms with eps 1e-6. The configs that
# replaced it later (2022-07, configs/sem_fpn/fpn_van_b*_ade20k_40k.py: drop path 0.2, 0.2, 0.2,
# 0.3, SyncBN) came after the files were released.
_base_ = ['./fpn_80k.py']
train_dataloader = dict(batch_size=4)  # x 8 GPUs = 32
auto_scale_lr = dict(base_batch_size=32)
# The leaves' drop path (van.py there sets 0.1 for every variant).
fpn_van_drop_path_rate = 0.1
optim_wrapper = dict(optimizer=dict(lr=2e-4))
param_scheduler = [
    dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=40000, by_epoch=False)
]
train_cfg = dict(max_iters=40000, val_interval=4000)
default_hooks = dict(checkpoint=dict(interval=4000))
# Test (_base_/datasets/ade20k.py there): `AlignResize(size_divisor=32)` after the usual
# resize, whole-image inference. That file has img_ratios 0.5-1.75 on and flip off: `--tta`. The
# published numbers are single scale (mmseg's single-scale re-evaluation of the same files gives
# 38.65 / 43.22 / 46.84 / 48.32 for 38.5 / 42.9 / 46.7 / 48.1): the default test.
val_dataloader = dict(dataset=dict(pipeline=_base_.align32_test_pipeline))
test_dataloader = val_dataloader
tta_pipeline = _base_.align32_ms_tta_pipeline
