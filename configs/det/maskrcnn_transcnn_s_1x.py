# Mask R-CNN with a TransCNN-Small (v1) backbone on COCO,
# 1x schedule (12 epochs, batch 16 = 8 GPUs x 2).
# Recipe of the paper (arXiv 2106.03180: "follows PVT"): AdamW, lr 1e-4, weight decay 1e-4,
# no gradient clipping, mmdet's 1x step schedule with 500-iteration linear warm-up.
# Published: none (no dense-prediction result was published for TransCNN v1).
_base_ = [
    'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
    '../_base_/backbones/transcnn_small.py',
]
model = dict(
    data_preprocessor=dict(bgr_to_rgb=True),  # ImageNet mean/std in RGB, as pretrained
    backbone={{_base_.backbone}},
    neck=dict(in_channels={{_base_.backbone_channels}}))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4))
