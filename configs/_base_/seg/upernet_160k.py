# UPerNet on ADE20K (512x512 crops), 160k iterations at batch 16 (8 GPUs x 2), with the UPerNet
# recipe of Swin's configs, which the official configs of CrossFormer (cheerss/CrossFormer, branch
# `crossformer`, segmentation/configs/upernet_crossformer_{s,b,l}_ade20k.py), UniFormer
# (Sense-X/UniFormer, semantic_segmentation/exp/upernet_hybrid_{small,base}/config.py) and VAN
# (VAN-Segmentation) use, and which HAT-Net, TransCNN and CMT (no official UPerNet recipe) borrow:
# AdamW lr 6e-5, weight decay 0.01, no decay on norms, 1500-iteration linear warm-up, then poly
# (power 1.0). A leaf adds a backbone (../backbones/*.py).
_base_ = ['mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py', './ade20k_test.py']
model = dict(pretrained=None)  # the backbone's init_cfg loads the ImageNet file
train_dataloader = dict(batch_size=2)  # x 8 GPUs = 16
# The total batch of the recipe: `tools/train.py --auto-scale-lr` scales the lr to other totals.
auto_scale_lr = dict(enable=False, base_batch_size=16)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    # mmengine's default constructor, with plain-dict parameter groups (compile=True traces them).
    constructor='mmhybrid.PlainGroupsOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    # Official custom_keys: 'norm' (the backbone's norms; the heads' BatchNorms are named bn).
    paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=1.0, eta_min=0.0, begin=1500, end=160000, by_epoch=False),
]
# Test: mmseg's ADE20K pipeline (short side 512, no rounding), whole-image inference, as
# UniFormer's official UPerNet configs; `--tta`: mmseg 0.x's multi-scale + flip
# (./ade20k_test.py). A family recipe swaps in what its official config did.
tta_pipeline = _base_.ms_flip_tta_pipeline
