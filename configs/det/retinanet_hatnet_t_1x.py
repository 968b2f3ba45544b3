# RetinaNet with a HAT-Net-Tiny backbone on COCO,
# 1x schedule (12 epochs, batch 16 = 8 GPUs x 2).
# Recipe of the paper (arXiv 2106.03180: "follows PVT"): AdamW, lr 1e-4, weight decay 1e-4,
# no gradient clipping, mmdet's 1x step schedule with 500-iteration linear warm-up.
# Published: RetinaNet 1x box AP 42.5.
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
    '../_base_/backbones/hatnet_tiny.py',
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
