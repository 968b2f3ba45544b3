# Demo: Mask R-CNN with a small VAN backbone trained from scratch on the synthetic shapes data
# (COCO layout, written by `tools/make_shapes.py` / `tools/demo.py` under data/shapes/coco/) on a
# CPU. Inherits the real config and overrides only the data, image scale, schedule, the backbone
# size (a custom VAN smaller than B0, no ImageNet weights), narrow neck/heads with GroupNorm,
# the number of sampled RoIs and the number of classes.
_base_ = ['../det/maskrcnn_van_b0_1x.py']
import mmhybrid.datasets  # noqa: E402  (a module: mmengine keeps it out of the config)

data_root = 'data/shapes/coco/'
# The shapes' class names and palette: mmhybrid.datasets writes the data with them.
classes = mmhybrid.datasets.SHAPE_CLASSES
metainfo = dict(classes=classes, palette=list(mmhybrid.datasets.SHAPE_PALETTE))
scale = (128, 128)
max_iters = 600
val_interval = 200

demo_channels = [16, 32, 64, 128]
head_channels = 64
gn = dict(type='GN', num_groups=16, requires_grad=True)
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=demo_channels, depths=[2, 2, 2, 2],
                  mlp_ratios=[4, 4, 4, 4]),
        drop_path_rate=0.0,
        init_cfg=None),  # from scratch: no ImageNet checkpoint on a fresh machine
    # narrow neck and heads (256 channels and 1024-wide FCs on COCO): the CPU time budget
    # GroupNorm in the neck and the mask head, as in mmdet's own from-scratch recipe
    # (mmdet::scratch/mask-rcnn_r50-scratch_fpn_gn-all_6x_coco.py): keeps the scale of the FPN
    # outputs in check when nothing is pretrained
    neck=dict(in_channels=demo_channels, out_channels=head_channels, norm_cfg=gn),
    rpn_head=dict(in_channels=head_channels, feat_channels=head_channels),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=head_channels),
        bbox_head=dict(in_channels=head_channels, fc_out_channels=256,
                       num_classes=len(classes)),
        mask_roi_extractor=dict(out_channels=head_channels),
        mask_head=dict(in_channels=head_channels, conv_out_channels=head_channels,
                       norm_cfg=gn, num_classes=len(classes))),
    # fewer sampled RoIs per image (512 on COCO): a few objects per small image, CPU budget
    train_cfg=dict(rpn_proposal=dict(nms_pre=1000, max_per_img=300),
                   rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=200)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=None,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

# from scratch and short: 3x the fine-tuning recipe's learning rate, warm-up, cosine
optim_wrapper = dict(optimizer=dict(lr=3e-4, weight_decay=0.05),
                     clip_grad=dict(max_norm=10.0, norm_type=2))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=val_interval)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', T_max=max_iters, eta_min=1e-5, by_epoch=False, begin=0,
         end=max_iters),
]
default_hooks = dict(
    logger=dict(interval=10, log_metric_by_epoch=False),
    checkpoint=dict(by_epoch=False, interval=val_interval, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(enable=False, base_batch_size=4)

# The CPU training savers (mmhybrid.optimize_for_training): VAN's dilated convolution in its
# phase form; the same gradients, a faster CPU step.
custom_hooks = [dict(type='mmhybrid.OptimizeForTrainingHook')]
