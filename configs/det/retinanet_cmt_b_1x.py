# RetinaNet with a CMT-B backbone on COCO, 1x schedule (12 epochs, batch 16 = 8 GPUs x 2).
# Recipe of the CMT paper (Guo et al., CVPR 2022), which follows PVT's COCO settings:
# AdamW, lr 1e-4, weight decay 1e-4 (no official CMT detection code exists).
# Published: none (the paper reports COCO results for CMT-S only).
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
    '../_base_/backbones/cmt_b.py',
]
model = dict(
    data_preprocessor=dict(bgr_to_rgb=True),  # ImageNet mean/std in RGB, as pretrained
    backbone={{_base_.backbone}},
    neck=dict(
        in_channels={{_base_.backbone_channels}},
        start_level=1,
        add_extra_convs='on_input'))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4))
