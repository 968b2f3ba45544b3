# RetinaNet with a UniFormer-B backbone on COCO, 1x schedule (recipe:
# ../_base_/det/uniformer_1x.py). No official config: the authors released no RetinaNet config or
# result; the optimizer is their Mask R-CNN recipe, in fp32. Published: none.
_base_ = [
    '../_base_/det/retinanet.py',
    '../_base_/det/uniformer_1x.py',
    '../_base_/backbones/uniformer_b.py',
]
model = dict(backbone={{_base_.backbone}}, neck=dict(in_channels={{_base_.backbone_channels}}))
