# The multi-scale + crop training pipeline of the 3x+MS COCO recipes ("augmentation strategy
# originates from DETR / Sparse RCNN"; Swin's and UniFormer's official
# object_detection/exp/{mask,cascade_mask}_rcnn_3x_ms_hybrid_*/config.py `AutoAugment` policies),
# in mmdet 3.x names (as mmdet's swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py): flip, then
# either a shorter side of 480..800 (step 32, longer side at most 1333), or a shorter side of
# 400/500/600, a random crop of 384..600, and a shorter side of 480..800 again. A variable only
# (no config key), so a detector base can list this file next to mmdet's dataset base.
ms_scales_480_800 = [(s, 1333) for s in range(480, 801, 32)]
ms_crop_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomChoice', transforms=[
        [dict(type='RandomChoiceResize', scales=ms_scales_480_800, keep_ratio=True)],
        [
            dict(type='RandomChoiceResize', scales=[(400, 1333), (500, 1333), (600, 1333)],
                 keep_ratio=True),
            dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600),
                 allow_negative_crop=True),
            dict(type='RandomChoiceResize', scales=ms_scales_480_800, keep_ratio=True),
        ],
    ]),
    dict(type='PackDetInputs'),
]
