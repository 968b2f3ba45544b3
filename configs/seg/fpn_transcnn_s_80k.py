# Semantic FPN with a TransCNN-Small (v1) backbone on ADE20K (512x512 crops).
# Recipe of the paper (arXiv 2106.03180: "follows PVT"): AdamW lr 1e-4, weight decay 1e-4, poly
# (power 0.9), 80k iterations at batch 16 (8 GPUs x 2).
# Published: none (no dense-prediction result was published for TransCNN v1).
_base_ = [
    'mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py',
    '../_base_/backbones/transcnn_small.py',
]
model = dict(
    pretrained=None,
    backbone={{_base_.backbone}},
    neck=dict(in_channels={{_base_.backbone_channels}}))
train_dataloader = dict(batch_size=2)  # x 8 GPUs = 16
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
    clip_grad=None)
param_scheduler = [
    dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=80000, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=80000, val_interval=8000)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=8000))
