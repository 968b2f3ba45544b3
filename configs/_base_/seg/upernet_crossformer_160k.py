# CrossFormer's UPerNet recipe: ./upernet_160k.py's training, and the test of the official
# configs (cheerss/CrossFormer, branch `crossformer`, segmentation/configs/_base_/datasets/
# ade20k_swin.py): `AlignResize` (size_divisor 32 by default), whole-image inference. That file
# has img_ratios 0.5-1.75 on and flip off: its "MS IOU" column (`--tta`); the single-scale
# column is the same file with the ratios commented out (README: single scale by default).
_base_ = ['./upernet_160k.py']
val_dataloader = dict(dataset=dict(pipeline=_base_.align32_test_pipeline))
test_dataloader = val_dataloader
tta_pipeline = _base_.align32_ms_tta_pipeline
