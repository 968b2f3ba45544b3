# CrossFormer++-S backbone (docs/families/crossformer.md; ImageNet-1k top-1 83.2, 23.3M params with
# the head; configs/crossformer_pp/small_patch4_group_const_224.yaml). ImageNet file: the authors'
# CrossFormer++-S checkpoint (cheerss/CrossFormer README, branch `main`: BaiduCloud only), saved as
# pretrained/crossformerpp-s.pth and loaded and converted in memory.
# Drop path 0.2: detection|segmentation/crossformer_factory.py CrossFormer_S2.
_base_ = ['./crossformerpp.py']
import mmhybrid.registry  # noqa: E402  (a module: not kept in the config; see README.md)
backbone = dict(
    arch='pp-small',
    drop_path_rate=0.2,
    init_cfg=dict(type='Pretrained', checkpoint='pretrained/crossformerpp-s.pth'))
# Neck/head widths: the variant's stage channels, read from the class's arch_zoo (README.md).
backbone_channels = mmhybrid.registry.MODELS.get(_base_.backbone.type).parse_arch(
    backbone['arch'])[1]['embed_dims']
backbone_stage3_channels = backbone_channels[2]
