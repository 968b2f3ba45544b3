# UPerNet with a CrossFormer-S backbone on ADE20K (recipe:
# ../_base_/seg/upernet_crossformer_160k.py). Official config:
# cheerss/CrossFormer@4fbf7501d6923f2564e8cb6d08a2d0138fc24a16:segmentation/configs/upernet_crossformer_s_ade20k.py.
# Published mIoU: 47.6 single scale, 48.4 multi-scale.
_base_ = [
    '../_base_/seg/upernet_crossformer_160k.py',
    '../_base_/backbones/crossformer_s.py',
]
model = dict(
    backbone={{_base_.backbone}},
    decode_head=dict(in_channels={{_base_.backbone_channels}}),
    auxiliary_head=dict(in_channels={{_base_.backbone_stage3_channels}}))
