# VAN's UPerNet recipe: ./upernet_160k.py's, as the configs that wrote the released UPerNet files
# (Visual-Attention-Network/VAN-Segmentation@8285fc7ad39e7944d5f25ba132f1cdfdce7d865d:configs/upernet/1k_pretrained/upernet_van_b2_512x512_160k_ade20k.py):
# AdamW lr 6e-5, weight
# decay 0.01, custom_keys absolute_pos_embed, relative_position_bias_table and norm -- VAN has only
# the norms, so its layer scales are decayed, as in every commit of that repository.
_base_ = ['./upernet_160k.py']
# The VAN code those files were trained with (Visual-Attention-Network/VAN-Segmentation@8285fc7ad39e7944d5f25ba132f1cdfdce7d865d: van.py, and
# _base_/models/upernet_van.py there, which hands the backbone norm_cfg=SyncBN): SyncBN for the
# backbone's BatchNorms (statistics over all GPUs), stage-ending LayerNorms with eps 1e-5 (the
# classification code and the older code of the Semantic FPN files: 1e-6). A leaf adds it to its
# backbone: `dict(_base_.backbone, **_base_.upernet_van_code)`.
upernet_van_code = dict(norm_cfg=dict(type='SyncBN', requires_grad=True), stage_norm_eps=1e-5)
# Test (_base_/datasets/ade20k.py there): `ResizeToMultiple(size_divisor=32)` after the
# usual resize, whole-image inference. The published numbers are multi-scale (README: "multi-scale
# validation following Swin-Transformer": test.py --aug-test, img_ratios 0.5-1.75 and flip on):
# `--tta`.
val_dataloader = dict(dataset=dict(pipeline=_base_.align32_test_pipeline))
test_dataloader = val_dataloader
tta_pipeline = _base_.align32_ms_flip_tta_pipeline
