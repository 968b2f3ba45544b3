# Mask R-CNN with a CrossFormer-S backbone on COCO, 1x schedule (recipe:
# ../_base_/det/crossformer_1x.py). Official config:
# cheerss/CrossFormer@4fbf7501d6923f2564e8cb6d08a2d0138fc24a16:detection/configs/mask_rcnn_crossformer_s_fpn_1x_coco.py.
# Published: Mask R-CNN 1x box/mask AP 45.4/41.4.
_base_ = [
    '../_base_/det/maskrcnn.py',
    '../_base_/det/crossformer_1x.py',
    '../_base_/backbones/crossformer_s.py',
]
model = dict(backbone={{_base_.backbone}}, neck=dict(in_channels={{_base_.backbone_channels}}))
