# Mask R-CNN with a CrossFormer-T backbone on COCO, 1x schedule (12 epochs, batch 16 = 8 GPUs x 2).
# Recipe of the official CrossFormer-S/B Mask R-CNN configs (cheerss/CrossFormer, branch
# `crossformer`, detection/configs/mask_rcnn_crossformer_s_fpn_1x_coco.py): AdamW lr 1e-4,
# weight decay 1e-4, no gradient clipping, 500-iteration linear warm-up, steps at epochs 8, 11.
# Published: none (no official CrossFormer-T detection result).
_base_ = [
    'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
    '../_base_/backbones/crossformer_t.py',
]
model = dict(
    data_preprocessor=dict(bgr_to_rgb=True),  # ImageNet mean/std in RGB, as pretrained
    backbone={{_base_.backbone}},
    neck=dict(in_channels={{_base_.backbone_channels}}))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
    clip_grad=None)
