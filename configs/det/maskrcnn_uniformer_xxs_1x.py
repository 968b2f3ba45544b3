# Mask R-CNN with a UniFormer-light XXS backbone on COCO, 1x schedule (recipe:
# ../_base_/det/uniformer_1x.py; the authors trained the light models without AMP). Official config:
# Sense-X/UniFormer@52a0415e4e0dda880fab8ffbc710e4d8e171149d:object_detection/exp_light/mask_rcnn_1x_xxs/config.py.
# Published: box AP / mask AP 42.8 / 39.2.
_base_ = [
    '../_base_/det/maskrcnn.py',
    '../_base_/det/uniformer_1x.py',
    '../_base_/backbones/uniformer_xxs.py',
]
model = dict(backbone={{_base_.backbone}}, neck=dict(in_channels={{_base_.backbone_channels}}))
