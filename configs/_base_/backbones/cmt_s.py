# CMT-S backbone (docs/families/cmt.md; ImageNet-1k top-1 83.5, pretrained at 224x224).
_base_ = ['./cmt.py']
import mmhybrid.registry  # noqa: E402  (a module: not kept in the config; see README.md)
backbone = dict(
    arch='small',
    drop_path_rate=0.1,
    init_cfg=dict(type='Pretrained', checkpoint='pretrained/cmt_small.pth'))
# Neck/head widths: the variant's stage channels, read from the class's arch_zoo (README.md).
backbone_channels = mmhybrid.registry.MODELS.get(_base_.backbone.type).parse_arch(
    backbone['arch'])[1]['embed_dims']
backbone_stage3_channels = backbone_channels[2]
