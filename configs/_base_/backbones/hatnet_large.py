# HAT-Net-Large backbone (docs/families/transcnn_hatnet.md; ImageNet-1k top-1 84.2 at 224).
_base_ = ['./hatnet.py']
import mmhybrid.registry  # noqa: E402  (a module: not kept in the config; see README.md)
backbone = dict(
    arch='large',
    init_cfg=dict(type='Pretrained', checkpoint='pretrained/HAT-Net_Large.pth'))
# Neck/head widths: the variant's stage channels, read from the class's arch_zoo (README.md).
backbone_channels = mmhybrid.registry.MODELS.get(_base_.backbone.type).parse_arch(
    backbone['arch'])[1]['embed_dims']
backbone_stage3_channels = backbone_channels[2]
