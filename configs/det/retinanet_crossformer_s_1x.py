# RetinaNet with a CrossFormer-S backbone on COCO, 1x schedule (recipe:
# ../_base_/det/crossformer_1x.py). Official config:
# cheerss/CrossFormer@4fbf7501d6923f2564e8cb6d08a2d0138fc24a16:detection/configs/retinanet_crossformer_s_fpn_1x_coco.py.
# Published: RetinaNet 1x box AP 44.4.
_base_ = [
    '../_base_/det/retinanet.py',
    '../_base_/det/crossformer_1x.py',
    '../_base_/backbones/crossformer_s.py',
]
model = dict(backbone={{_base_.backbone}}, neck=dict(in_channels={{_base_.backbone_channels}}))
