# Semantic FPN with a CMT-S backbone on ADE20K (recipe: ../_base_/seg/fpn_80k.py). No official
# config (no CMT segmentation code was released): PVT's Semantic FPN recipe. Published mIoU: none
# (no ADE20K result exists for CMT).
_base_ = [
    '../_base_/seg/fpn_80k.py',
    '../_base_/backbones/cmt_s.py',
]
model = dict(
    backbone={{_base_.backbone}},
    neck=dict(in_channels={{_base_.backbone_channels}}))
