# VAN's Semantic FPN recipe (Visual-Attention-Network/VAN-Segmentation): AdamW lr 2e-4, weight
# decay 1e-4, poly (power 0.9), 40k iterations at batch 32 (8 GPUs x 4) -- the same budget as the
# usual 80k at batch 16.
_base_ = ['./fpn_80k.py']
train_dataloader = dict(batch_size=4)  # x 8 GPUs = 32
optim_wrapper = dict(optimizer=dict(lr=2e-4))
param_scheduler = [
    dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=40000, by_epoch=False)
]
train_cfg = dict(max_iters=40000, val_interval=4000)
default_hooks = dict(checkpoint=dict(interval=4000))
# Test (as the authors'
# Visual-Attention-Network/VAN-Segmentation@23cd0ed8:configs/_base_/datasets/ade20k.py):
# `ResizeToMultiple(size_divisor=32)` after the usual resize, whole-image inference.
val_dataloader = dict(dataset=dict(pipeline=_base_.align32_test_pipeline))
test_dataloader = val_dataloader
tta_pipeline = _base_.align32_ms_flip_tta_pipeline
