# UPerNet with a CrossFormer++-S backbone on ADE20K (recipe: ../_base_/seg/upernet_160k.py, which
# the main branch keeps). Official config (branch `main`):
# segmentation/configs/crossformer_pp/upernet_crossformerpp_s_ade20k.py. Published (main README)
# mIoU: 49.4 single scale, 50.8 multi-scale; no trained model released.
_base_ = [
    '../_base_/seg/upernet_160k.py',
    '../_base_/backbones/crossformerpp_s.py',
]
model = dict(
    backbone={{_base_.backbone}},
    decode_head=dict(in_channels={{_base_.backbone_channels}}),
    auxiliary_head=dict(in_channels={{_base_.backbone_stage3_channels}}))
