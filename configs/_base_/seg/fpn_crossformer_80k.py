# CrossFormer's Semantic FPN recipe: ./fpn_80k.py's training, and the test of the official
# configs (cheerss/CrossFormer, branch `crossformer`, segmentation/configs/_base_/datasets/
# ade20k.py): `AlignResize(size_divisor=32)`, i.e. the image resized up to a multiple of 32,
# whole-image inference, single scale (the published numbers).
_base_ = ['./fpn_80k.py']
val_dataloader = dict(dataset=dict(pipeline=_base_.align32_test_pipeline))
test_dataloader = val_dataloader
tta_pipeline = _base_.align32_ms_tta_pipeline  # the official file's flip=False
