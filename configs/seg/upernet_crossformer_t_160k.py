# UPerNet with a CrossFormer-T backbone on ADE20K (recipe:
# ../_base_/seg/upernet_crossformer_160k.py). No official config: the recipe of the official
# CrossFormer-S/B/L ones. Published: none (no official CrossFormer-T segmentation result).
_base_ = [
    '../_base_/seg/upernet_crossformer_160k.py',
    '../_base_/backbones/crossformer_t.py',
]
model = dict(
    backbone={{_base_.backbone}},
    decode_head=dict(in_channels={{_base_.backbone_channels}}),
    auxiliary_head=dict(in_channels={{_base_.backbone_stage3_channels}}))
