# CrossFormer++-H backbone (docs/families/crossformer.md; ImageNet-1k top-1 84.9, 96.0M params with
# the head; configs/crossformer_pp/huge_patch4_group_const_224.yaml). ImageNet file: the authors'
# CrossFormer++-H checkpoint (cheerss/CrossFormer README, branch `main`: BaiduCloud only), saved as
# pretrained/crossformerpp-h.pth and loaded and converted in memory.
# No dense factory or config for it: drop path 0.5 as its ImageNet yaml.
_base_ = ['./crossformerpp.py']
import mmhybrid.registry  # noqa: E402  (a module: not kept in the config; see README.md)
backbone = dict(
    arch='pp-huge',
    drop_path_rate=0.5,
    init_cfg=dict(type='Pretrained', checkpoint='pretrained/crossformerpp-h.pth'))
# Neck/head widths: the variant's stage channels, read from the class's arch_zoo (README.md).
backbone_channels = mmhybrid.registry.MODELS.get(_base_.backbone.type).parse_arch(
    backbone['arch'])[1]['embed_dims']
backbone_stage3_channels = backbone_channels[2]
