# Demo: Semantic FPN with a small VAN backbone trained from scratch on the synthetic shapes data
# (ADE20K layout, written by `tools/make_shapes.py` / `tools/demo.py` under data/shapes/ade20k/)
# on a CPU. Inherits the real config and overrides only the data, image scale, schedule, the
# backbone size (a custom VAN smaller than B0, no ImageNet weights), a narrow neck/head, and the
# classes.
# mmseg's ADE20KDataset only accepts subsets of the 150 ADE20K class names, so the data is read
# with mmseg's BaseSegDataset and the ADE20K file suffixes (.jpg/.png). Unlike ADE20K, label 0
# (background) is a class here (reduce_zero_label=False): the model is trained and evaluated on
# finding the shapes, not only on telling them apart where a shape is known to be.
_base_ = ['../seg/fpn_van_b0_40k.py']
import mmhybrid.datasets  # noqa: E402  (a module: mmengine keeps it out of the config)

data_root = 'data/shapes/ade20k'
# The class names (background, circle, square, triangle) and palette: mmhybrid.datasets writes the
# label maps with them.
classes = mmhybrid.datasets.SEG_CLASSES
metainfo = dict(classes=classes, palette=[list(c) for c in mmhybrid.datasets.SEG_PALETTE])
scale = (128, 128)
crop_size = scale
max_iters = 300
val_interval = 100

demo_channels = [16, 32, 64, 128]
head_channels = 64
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=demo_channels, depths=[2, 2, 2, 2],
                  mlp_ratios=[4, 4, 4, 4]),
        drop_path_rate=0.0,
        init_cfg=None),  # from scratch: no ImageNet checkpoint on a fresh machine
    # narrow neck and head (256 / 128 channels on ADE20K): the CPU time budget
    neck=dict(in_channels=demo_channels, out_channels=head_channels),
    decode_head=dict(in_channels=[head_channels] * 4, channels=head_channels,
                     num_classes=len(classes)))

shapes_dataset = dict(
    type='BaseSegDataset',
    data_root=data_root,
    metainfo=metainfo,
    img_suffix='.jpg',
    seg_map_suffix='.png',
    reduce_zero_label=False)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),  # reduce_zero_label from the dataset (False)
    dict(type='RandomResize', scale=scale, ratio_range=(0.75, 1.5), keep_ratio=True),
    # no cat_max_ratio: background fills most of every crop, and is a class to learn
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations'),  # reduce_zero_label from the dataset (False)
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        **shapes_dataset,
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        **shapes_dataset,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=1e-3))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', power=0.9, eta_min=1e-5, by_epoch=False, begin=50, end=max_iters),
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(by_epoch=False, interval=val_interval, max_keep_ckpts=1))

# The CPU training savers (mmhybrid.optimize_for_training): VAN's dilated convolution in its
# phase form; the same gradients, a faster CPU step.
custom_hooks = [dict(type='mmhybrid.OptimizeForTrainingHook')]
