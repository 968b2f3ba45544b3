# UniFormer's COCO recipe, 3x schedule (36 epochs, batch 16 = 8 GPUs x 2), for Mask R-CNN and
# Cascade Mask R-CNN with multi-scale training. Official (Sense-X/UniFormer,
# object_detection/exp/{mask,cascade_mask}_rcnn_3x_ms_hybrid_{small,base}/config.py): the 1x
# optimizer in mixed precision (./uniformer_1x_amp.py: AdamW lr 1e-4, weight decay 0.05, no decay
# on norms, fp16 with a dynamic loss scale), mmdet 2.x's schedule_1x warm-up (500 iterations from
# 0.001) and steps at epochs 27 and 33; source Sense-X/UniFormer@52a0415e4e0dda880fab8ffbc710e4d8e171149d.
_base_ = ['./uniformer_1x_amp.py']
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=36, by_epoch=True, milestones=[27, 33], gamma=0.1),
]
train_cfg = dict(max_epochs=36)
