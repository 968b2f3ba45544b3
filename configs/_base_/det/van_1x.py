# VAN's COCO recipe, 1x schedule (12 epochs, batch 16 = 8 GPUs x 2): the VAN paper (Guo et al.,
# 2022): AdamW, lr 1e-4, weight decay 0.05, mmdet's 1x step schedule.
_base_ = ['mmdet::_base_/schedules/schedule_1x.py']
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05))
