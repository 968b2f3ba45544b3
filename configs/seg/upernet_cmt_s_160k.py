# UPerNet with a CMT-S backbone on ADE20K (recipe: ../_base_/seg/upernet_160k.py). No official
# config (no UPerNet code was released): Swin's UPerNet recipe. Published mIoU: none.
_base_ = [
    '../_base_/seg/upernet_160k.py',
    '../_base_/backbones/cmt_s.py',
]
model = dict(
    backbone={{_base_.backbone}},
    decode_head=dict(in_channels={{_base_.backbone_channels}}),
    auxiliary_head=dict(in_channels={{_base_.backbone_stage3_channels}}))
# No decay on the position biases either, as Swin's UPerNet configs do for theirs.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'relative_pos': dict(decay_mult=0.)}))
