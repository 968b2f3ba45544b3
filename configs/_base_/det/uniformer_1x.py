# UniFormer's COCO recipe, 1x schedule (12 epochs, batch 16 = 8 GPUs x 2). Official
# (Sense-X/UniFormer, object_detection/exp/mask_rcnn_1x_hybrid_{small,base}/config.py): AdamW
# lr 1e-4, weight decay 0.05, no decay on norms, no gradient clipping, steps at epochs 8 and 11
# (mmdet's 1x schedule); source Sense-X/UniFormer@52a0415e4e0dda880fab8ffbc710e4d8e171149d:
# object_detection/exp/mask_rcnn_1x_hybrid_small/config.py. In fp32, as the authors trained the
# light XXS/XS models (exp_light/mask_rcnn_1x_{xxs,xs}/config.py: use_fp16=False); the hybrid S/B
# detectors add mixed precision (./uniformer_1x_amp.py). They released no RetinaNet config: ours
# uses this Mask R-CNN optimizer recipe, in fp32.
_base_ = ['mmdet::_base_/schedules/schedule_1x.py']
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    # mmengine's default constructor, with plain-dict parameter groups (compile=True traces them).
    constructor='mmhybrid.PlainGroupsOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    # Official: custom_keys 'norm' (every norm of the backbone is named norm*), plus
    # absolute_pos_embed / relative_position_bias_table, which UniFormer does not have.
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}),
    clip_grad=None)
