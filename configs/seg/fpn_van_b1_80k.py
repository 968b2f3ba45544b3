# Semantic FPN with a VAN-B1 backbone on ADE20K (512x512 crops).
# Official VAN-Segmentation recipe: AdamW lr 2e-4, weight decay 1e-4, poly (power 0.9),
# 40k iterations at batch 32 (8 GPUs x 4) -- the same budget as the usual 80k at batch 16.
# Published mIoU (single scale): 42.9 (43.22).
_base_ = [
    'mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py',
    '../_base_/backbones/van_b1.py',
]
model = dict(
    pretrained=None,
    backbone={{_base_.backbone}},
    neck=dict(in_channels={{_base_.backbone_channels}}))
train_dataloader = dict(batch_size=4)  # x 8 GPUs = 32
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4),
    clip_grad=None)
param_scheduler = [
    dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=40000, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=40000, val_interval=4000)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=4000))
