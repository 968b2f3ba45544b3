# Mask R-CNN with a UniFormer-S backbone (hybrid, window 14) on COCO, 1x schedule (12 epochs,
# batch 16 = 8 GPUs x 2). Official recipe (Sense-X/UniFormer,
# object_detection/exp/mask_rcnn_1x_hybrid_small/config.py): AdamW lr 1e-4, weight decay 0.05,
# no decay on norms, no gradient clipping, steps at epochs 8 and 11 (mmdet's 1x schedule). The
# authors trained with apex AMP (`tools/train.py --amp` here) and checkpointed stage 3 (add
# `with_cp=[2]` to the backbone when short of memory; results are unchanged).
# Published: box AP / mask AP 45.6 / 41.6.
_base_ = [
    'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
    '../_base_/backbones/uniformer_s.py',
]
model = dict(
    data_preprocessor=dict(bgr_to_rgb=True),  # ImageNet mean/std in RGB, as pretrained
    backbone={{_base_.backbone}},
    neck=dict(in_channels={{_base_.backbone_channels}}))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    # Official: custom_keys 'norm' (every norm of the backbone is named norm*), plus
    # absolute_pos_embed / relative_position_bias_table, which UniFormer does not have.
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}),
    clip_grad=None)
