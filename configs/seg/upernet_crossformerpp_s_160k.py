# UPerNet with a CrossFormer++-S backbone on ADE20K (recipe: ../_base_/seg/upernet_crossformer_160k.py:
# CrossFormer's training and test, which the main branch keeps). Official config:
# cheerss/CrossFormer@795201075f0066e78408882617312084e25aef61:segmentation/configs/crossformer_pp/upernet_crossformerpp_s_ade20k.py
# (test segmentation/configs/_base_/datasets/ade20k_swin.py: AlignResize to a multiple of 32,
# multi-scale without flip for `--tta`). Published (main README) mIoU: 49.4 single scale, 50.8
# multi-scale; no trained model released.
_base_ = [
    '../_base_/seg/upernet_crossformer_160k.py',
    '../_base_/backbones/crossformerpp_s.py',
]
model = dict(
    backbone={{_base_.backbone}},
    decode_head=dict(in_channels={{_base_.backbone_channels}}),
    auxiliary_head=dict(in_channels={{_base_.backbone_stage3_channels}}))
