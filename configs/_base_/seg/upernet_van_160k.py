# VAN's UPerNet recipe (Visual-Attention-Network/VAN-Segmentation): ./upernet_160k.py's, with no
# decay on the layer scales either.
_base_ = ['./upernet_160k.py']
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'layer_scale': dict(decay_mult=0.)}))
# Test (as the authors'
# Visual-Attention-Network/VAN-Segmentation@23cd0ed8:configs/_base_/datasets/ade20k.py):
# `ResizeToMultiple(size_divisor=32)` after the usual resize, whole-image inference. The published numbers are multi-scale
# (README: "multi-scale validation following Swin-Transformer", i.e. with flip): `--tta`.
val_dataloader = dict(dataset=dict(pipeline=_base_.align32_test_pipeline))
test_dataloader = val_dataloader
tta_pipeline = _base_.align32_ms_flip_tta_pipeline
