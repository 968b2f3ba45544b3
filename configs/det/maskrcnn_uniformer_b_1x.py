# Mask R-CNN with a UniFormer-B backbone on COCO, 1x schedule (recipe, mixed precision as the
# authors: ../_base_/det/uniformer_1x_amp.py). Official config:
# Sense-X/UniFormer@52a0415e4e0dda880fab8ffbc710e4d8e171149d:object_detection/exp/mask_rcnn_1x_hybrid_base/config.py.
# Published: box AP / mask AP 47.4 / 43.1.
_base_ = [
    '../_base_/det/maskrcnn.py',
    '../_base_/det/uniformer_1x_amp.py',
    '../_base_/backbones/uniformer_b.py',
]
model = dict(backbone={{_base_.backbone}}, neck=dict(in_channels={{_base_.backbone_channels}}))
