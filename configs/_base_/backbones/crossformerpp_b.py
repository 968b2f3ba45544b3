# CrossFormer++-B backbone (docs/families/crossformer.md; ImageNet-1k top-1 84.2, 52.0M params with
# the head; configs/crossformer_pp/base_patch4_group_const_224.yaml). ImageNet file: the authors'
# CrossFormer++-B checkpoint (cheerss/CrossFormer README, branch `main`: BaiduCloud only), saved as
# pretrained/crossformerpp-b.pth and loaded and converted in memory.
# Drop path 0.3: crossformer_factory.py CrossFormer_B2 (which cannot be built as written: it
# calls super(CrossFormer_B, self)); the authors give no CrossFormer++-B det/seg config.
_base_ = ['./crossformerpp.py']
import mmhybrid.registry  # noqa: E402  (a module: not kept in the config; see README.md)
backbone = dict(
    arch='pp-base',
    drop_path_rate=0.3,
    init_cfg=dict(type='Pretrained', checkpoint='pretrained/crossformerpp-b.pth'))
# Neck/head widths: the variant's stage channels, read from the class's arch_zoo (README.md).
backbone_channels = mmhybrid.registry.MODELS.get(_base_.backbone.type).parse_arch(
    backbone['arch'])[1]['embed_dims']
backbone_stage3_channels = backbone_channels[2]
