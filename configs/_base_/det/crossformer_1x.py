# CrossFormer's COCO recipe, 1x schedule (12 epochs, batch 16 = 8 GPUs x 2), for RetinaNet and
# Mask R-CNN. Official (cheerss/CrossFormer, branch `crossformer`, detection/configs/
# {retinanet,mask_rcnn}_crossformer_{s,b}_fpn_1x_coco.py): AdamW lr 1e-4, weight decay 1e-4,
# no gradient clipping, 500-iteration linear warm-up, steps at epochs 8, 11 (mmdet's 1x schedule).
_base_ = ['mmdet::_base_/schedules/schedule_1x.py']
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
    clip_grad=None)
