# CMT's COCO recipe, 1x schedule (12 epochs, batch 16 = 8 GPUs x 2): the CMT paper (Guo et al.,
# CVPR 2022) follows PVT's COCO settings: AdamW, lr 1e-4, weight decay 1e-4, mmdet's 1x step
# schedule (no official CMT detection code exists).
_base_ = ['mmdet::_base_/schedules/schedule_1x.py']
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4))
