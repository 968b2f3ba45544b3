# RetinaNet with a CrossFormer++-S backbone on COCO, 1x schedule (recipe:
# ../_base_/det/crossformer_1x.py, which the main branch keeps). Official config:
# cheerss/CrossFormer@795201075f0066e78408882617312084e25aef61:detection/configs/crossformer_pp/retinanet_crossformerpp_s_fpn_1x_coco.py.
# Published (main README): box AP 45.1; no trained model released.
_base_ = [
    '../_base_/det/retinanet.py',
    '../_base_/det/crossformer_1x.py',
    '../_base_/backbones/crossformerpp_s.py',
]
model = dict(backbone={{_base_.backbone}}, neck=dict(in_channels={{_base_.backbone_channels}}))
