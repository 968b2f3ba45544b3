# TransCNN-Small (v1) backbone (docs/families/transcnn_hatnet.md; ImageNet-1k top-1 83.1 at 256).
# ImageNet file: the authors' `TransCNN-Small.pth` (yun-liu/TransCNN README at commit 0bd7463e,
# GitHub release yun-liu/TransCNN v1.0), loaded and converted in memory.
_base_ = ['./transcnn.py']
import mmhybrid.registry  # noqa: E402  (a module: not kept in the config; see README.md)
backbone = dict(
    arch='small',
    init_cfg=dict(type='Pretrained', checkpoint='pretrained/TransCNN-Small.pth'))
# Neck/head widths: the variant's stage channels, read from the class's arch_zoo (README.md).
backbone_channels = mmhybrid.registry.MODELS.get(_base_.backbone.type).parse_arch(
    backbone['arch'])[1]['embed_dims']
backbone_stage3_channels = backbone_channels[2]
