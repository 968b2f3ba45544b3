# Semantic FPN on ADE20K (512x512 crops), 80k iterations at batch 16 (8 GPUs x 2): PVT's recipe,
# which CrossFormer's official configs (cheerss/CrossFormer, branch `crossformer`,
# segmentation/configs/fpn_crossformer_{s,b,l}_ade20k_40k.py, which run 80k iterations; the official
# files set 4 per GPU) and the HAT-Net / TransCNN paper (arXiv 2106.03180: "follows PVT") use, and
# CMT's (no official CMT segmentation code exists): AdamW lr 1e-4, weight decay 1e-4, poly
# (power 0.9, min 0), no warm-up. ./fpn_uniformer_80k.py and ./fpn_van_40k.py change what their
# official recipes change. A leaf adds a backbone (../backbones/*.py).
_base_ = ['mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py', './ade20k_test.py']
model = dict(pretrained=None)  # the backbone's init_cfg loads the ImageNet file
train_dataloader = dict(batch_size=2)  # x 8 GPUs = 16
# The total batch of the recipe: `tools/train.py --auto-scale-lr` scales the lr to other totals.
auto_scale_lr = dict(enable=False, base_batch_size=16)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
    clip_grad=None)
param_scheduler = [
    dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=80000, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=80000, val_interval=8000)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=8000))
# Test: mmseg's ADE20K pipeline (short side 512, no rounding); `--tta`: mmseg 0.x's multi-scale
# + flip (./ade20k_test.py). A family recipe swaps in what its official config did.
tta_pipeline = _base_.ms_flip_tta_pipeline
