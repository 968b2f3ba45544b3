# CrossFormer-S backbone (docs/families/crossformer.md; ImageNet-1k top-1 82.5, 30.7M params
# with the head).
# ImageNet file: the authors' `crossformer-s.pth` (cheerss/CrossFormer README, Google Drive /
# BaiduCloud links), loaded and converted in memory; see the README for where to get it.
_base_ = ['./crossformer.py']
import mmhybrid.registry  # noqa: E402  (a module: not kept in the config; see README.md)
backbone = dict(
    arch='small',
    drop_path_rate=0.2,
    init_cfg=dict(type='Pretrained', checkpoint='pretrained/crossformer-s.pth'))
# Neck/head widths: the variant's stage channels, read from the class's arch_zoo (README.md).
backbone_channels = mmhybrid.registry.MODELS.get(_base_.backbone.type).parse_arch(
    backbone['arch'])[1]['embed_dims']
backbone_stage3_channels = backbone_channels[2]
