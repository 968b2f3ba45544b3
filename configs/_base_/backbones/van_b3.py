# VAN-B3 backbone (docs/families/van.md; ImageNet-1k top-1 83.9).
_base_ = ['./van.py']
import mmhybrid.registry  # noqa: E402  (a module: not kept in the config; see README.md)
backbone = dict(
    arch='b3',
    drop_path_rate=0.3,
    init_cfg=dict(type='Pretrained', checkpoint='pretrained/van_b3.pth.tar'))
# Neck/head widths: the variant's stage channels, read from the class's arch_zoo (README.md).
backbone_channels = mmhybrid.registry.MODELS.get(_base_.backbone.type).parse_arch(
    backbone['arch'])[1]['embed_dims']
backbone_stage3_channels = backbone_channels[2]
