# ADE20K test-time pipelines of the released segmenters (mmseg 0.x semantics written for mmseg
# 1.x). Only variables with names of their own, so a recipe can list this file next to an
# `mmseg::` base; the recipe picks what its official config did:
# - `align32_test_pipeline`: the short side scaled to 512 (long side at most 2048), then the
#   image resized (not padded) up to a multiple of 32 -- the `AlignResize(size_divisor=32)` of
#   CrossFormer's and UniFormer-FPN's official configs and the `ResizeToMultiple(size_divisor=32)`
#   of VAN-Segmentation's; mmseg's default ADE20K test pipeline (no rounding) is what UniFormer's
#   UPerNet used.
# - `*_tta_pipeline`: mmseg 0.x `MultiScaleFlipAug(img_scale=(2048, 512), img_ratios=[0.5, ...,
#   1.75])` scales the (2048, 512) target, not the image: mmseg 1.x's default `tta_pipeline`
#   (`Resize(scale_factor=r)`, relative to the image) is not what the published multi-scale
#   numbers used. `--tta` of tools/test.py (and of mmseg's) swaps the chosen one in.
ms_scales = [(int(2048 * r), int(512 * r)) for r in [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]]
ms_resizes = [dict(type='Resize', scale=s, keep_ratio=True) for s in ms_scales]
resize_to_32 = [dict(type='ResizeToMultiple', size_divisor=32)]
both_flips = [dict(type='RandomFlip', prob=0., direction='horizontal'),
              dict(type='RandomFlip', prob=1., direction='horizontal')]
no_flip = [dict(type='RandomFlip', prob=0., direction='horizontal')]
tta_tail = [[dict(type='LoadAnnotations')], [dict(type='PackSegInputs')]]
align32_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    *resize_to_32,
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
# Multi-scale + flip (Swin's convention, which VAN's README names; UniFormer's UPerNet).
ms_flip_tta_pipeline = [dict(type='LoadImageFromFile'),
                        dict(type='TestTimeAug', transforms=[ms_resizes, both_flips, *tta_tail])]
# The same with the resize rounded up to a multiple of 32 (VAN's UPerNet).
align32_ms_flip_tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[ms_resizes, resize_to_32, both_flips, *tta_tail])]
# Rounded to 32, multi-scale without flip: CrossFormer's official `ade20k_swin.py` (img_ratios
# on, flip=False), which its UPerNet "MS IOU" column used.
align32_ms_tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[ms_resizes, resize_to_32, no_flip, *tta_tail])]
