# The COCO recipe of the HAT-Net / TransCNN paper (arXiv 2106.03180: "follows PVT"), 1x schedule
# (12 epochs, batch 16 = 8 GPUs x 2): AdamW, lr 1e-4, weight decay 1e-4, no gradient clipping,
# mmdet's 1x step schedule with 500-iteration linear warm-up. Used by HAT-Net and TransCNN (v1).
_base_ = ['mmdet::_base_/schedules/schedule_1x.py']
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4))
