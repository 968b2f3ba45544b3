# Cascade Mask R-CNN (FPN) on COCO as UniFormer's official
# object_detection/exp/cascade_mask_rcnn_3x_ms_hybrid_{small,base}/config.py (and Swin's
# cascade_mask_rcnn_swin_*_mstrain_480-800_giou_4conv1f_adamw_3x_coco.py): mmdet's
# cascade-mask-rcnn_r50_fpn.py with each of the three bbox heads a 4conv1fc ConvFCBBoxHead with
# SyncBN, class-specific regression of decoded boxes with GIoU loss (weight 10), the stages'
# target stds 0.1/0.2, 0.05/0.1, 0.033/0.067; trained with the multi-scale + crop pipeline
# (./ms_crop_pipeline.py), tested single scale at 1333x800. A leaf adds a 3x family recipe and a
# backbone.
_base_ = [
    'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/default_runtime.py',
    './ms_crop_pipeline.py',
]
stage_target_stds = [[0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067]]
model = dict(
    data_preprocessor=dict(bgr_to_rgb=True),  # ImageNet mean/std in RGB, as pretrained
    roi_head=dict(bbox_head=[
        dict(type='ConvFCBBoxHead', num_shared_convs=4, num_shared_fcs=1, in_channels=256,
             conv_out_channels=256, fc_out_channels=1024, roi_feat_size=7, num_classes=80,
             bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                             target_stds=stds),
             reg_class_agnostic=False, reg_decoded_bbox=True,
             norm_cfg=dict(type='SyncBN', requires_grad=True),
             loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
             loss_bbox=dict(type='GIoULoss', loss_weight=10.0))
        for stds in stage_target_stds
    ]))
train_dataloader = dict(dataset=dict(pipeline=_base_.ms_crop_train_pipeline))
