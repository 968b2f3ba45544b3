# Mask R-CNN with a CrossFormer-B backbone on COCO, 1x schedule (recipe:
# ../_base_/det/crossformer_1x.py). Official config:
# cheerss/CrossFormer@4fbf7501d6923f2564e8cb6d08a2d0138fc24a16:detection/configs/mask_rcnn_crossformer_b_fpn_1x_coco.py.
# Published: Mask R-CNN 1x box/mask AP 47.2/42.7.
_base_ = [
    '../_base_/det/maskrcnn.py',
    '../_base_/det/crossformer_1x.py',
    '../_base_/backbones/crossformer_b.py',
]
model = dict(backbone={{_base_.backbone}}, neck=dict(in_channels={{_base_.backbone_channels}}))
