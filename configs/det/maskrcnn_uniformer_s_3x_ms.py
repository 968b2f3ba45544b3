# Mask R-CNN with a UniFormer-S backbone (hybrid stage 3, window 14) on COCO, 3x schedule with
# multi-scale + crop training (recipe: ../_base_/det/uniformer_3x.py, pipeline:
# ../_base_/det/ms_crop_pipeline.py). Official config:
# Sense-X/UniFormer@52a0415e4e0dda880fab8ffbc710e4d8e171149d:object_detection/exp/mask_rcnn_3x_ms_hybrid_small/config.py
# (drop path 0.1; the authors also checkpointed stage 3: add `with_cp=[2]` to the backbone when
# short of memory). Published: box AP / mask AP 48.2 / 43.4 (single-scale test).
_base_ = [
    '../_base_/det/maskrcnn_ms_crop.py',
    '../_base_/det/uniformer_3x.py',
    '../_base_/backbones/uniformer_s.py',
]
model = dict(backbone=dict(_base_.backbone, drop_path_rate=0.1),
             neck=dict(in_channels={{_base_.backbone_channels}}))
