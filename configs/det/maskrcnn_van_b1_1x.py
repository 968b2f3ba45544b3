# maskrcnn with a VAN-B1 backbone on COCO, 1x schedule (12 epochs, batch 16 = 8 GPUs x 2).
# Recipe of the VAN paper (Guo et al., 2022): AdamW, lr 1e-4, weight decay 0.05.
# Published: Mask R-CNN 1x box/mask AP 42.6 / 38.9.
_base_ = [
    'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
    '../_base_/backbones/van_b1.py',
]
model = dict(
    data_preprocessor=dict(bgr_to_rgb=True),  # ImageNet mean/std in RGB, as pretrained
    backbone={{_base_.backbone}},
    neck=dict(in_channels={{_base_.backbone_channels}}))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05))
