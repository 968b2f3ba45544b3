# Mask R-CNN with a UniFormer-S backbone on COCO, 1x schedule (recipe, mixed precision as the
# authors: ../_base_/det/uniformer_1x_amp.py). Official config:
# Sense-X/UniFormer@52a0415e4e0dda880fab8ffbc710e4d8e171149d:object_detection/exp/mask_rcnn_1x_hybrid_small/config.py;
# the authors also checkpointed stage 3 (add `with_cp=[2]` to the backbone when short of memory;
# results are unchanged). Published: box AP / mask AP 45.6 / 41.6.
_base_ = [
    '../_base_/det/maskrcnn.py',
    '../_base_/det/uniformer_1x_amp.py',
    '../_base_/backbones/uniformer_s.py',
]
model = dict(backbone={{_base_.backbone}}, neck=dict(in_channels={{_base_.backbone_channels}}))
