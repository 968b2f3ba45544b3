# VAN-B5 backbone (docs/families/van.md) pretrained on ImageNet-22k. Drop path 0.4 as the official
# VAN-Segmentation UPerNet config. ImageNet file: `van_b5_22k.pth`, the name VAN-Segmentation's
# configs load (the VAN-Classification README lists no B4-B6 files: needed to train only, not to
# evaluate a released segmenter).
_base_ = ['./van.py']
import mmhybrid.registry  # noqa: E402  (a module: not kept in the config; see README.md)
backbone = dict(
    arch='b5',
    drop_path_rate=0.4,
    init_cfg=dict(type='Pretrained', checkpoint='pretrained/van_b5_22k.pth'))
# Neck/head widths: the variant's stage channels, read from the class's arch_zoo (README.md).
backbone_channels = mmhybrid.registry.MODELS.get(_base_.backbone.type).parse_arch(
    backbone['arch'])[1]['embed_dims']
backbone_stage3_channels = backbone_channels[2]
