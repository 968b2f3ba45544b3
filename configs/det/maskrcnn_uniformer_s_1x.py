# Mask R-CNN with a UniFormer-S backbone on COCO, 1x schedule (recipe:
# ../_base_/det/uniformer_1x.py). Official config:
# object_detection/exp/mask_rcnn_1x_hybrid_small/config.py; the authors also checkpointed stage 3
# (add `with_cp=[2]` to the backbone when short of memory; results are unchanged). Published: box
# AP / mask AP 45.6 / 41.6.
_base_ = [
    '../_base_/det/maskrcnn.py',
    '../_base_/det/uniformer_1x.py',
    '../_base_/backbones/uniformer_s.py',
]
model = dict(backbone={{_base_.backbone}}, neck=dict(in_channels={{_base_.backbone_channels}}))
