# Cascade Mask R-CNN (4conv1fc SyncBN bbox heads, GIoU loss) with a UniFormer-S backbone (hybrid
# stage 3, window 14) on COCO, 3x schedule with multi-scale + crop training (model and pipeline:
# ../_base_/det/cascade_maskrcnn_ms_crop.py, recipe: ../_base_/det/uniformer_3x.py). Official
# config:
# Sense-X/UniFormer@52a0415e4e0dda880fab8ffbc710e4d8e171149d:object_detection/exp/cascade_mask_rcnn_3x_ms_hybrid_small/config.py
# (drop path 0.2). Published: box AP / mask AP 52.1 / 45.2 (single-scale test).
_base_ = [
    '../_base_/det/cascade_maskrcnn_ms_crop.py',
    '../_base_/det/uniformer_3x.py',
    '../_base_/backbones/uniformer_s.py',
]
model = dict(backbone=dict(_base_.backbone, drop_path_rate=0.2),
             neck=dict(in_channels={{_base_.backbone_channels}}))
