# Mask R-CNN with a CrossFormer-T backbone on COCO, 1x schedule (recipe:
# ../_base_/det/crossformer_1x.py). No official config: the recipe of the official CrossFormer-S/B
# ones. Published: none (no official CrossFormer-T detection result).
_base_ = [
    '../_base_/det/maskrcnn.py',
    '../_base_/det/crossformer_1x.py',
    '../_base_/backbones/crossformer_t.py',
]
model = dict(backbone={{_base_.backbone}}, neck=dict(in_channels={{_base_.backbone_channels}}))
