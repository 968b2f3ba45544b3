# UniFormer-B backbone (docs/families/uniformer.md). Drop path 0.3 as the official
# object_detection/exp/mask_rcnn_1x_hybrid_base/config.py (the segmentation configs set
# their own).
# ImageNet file: the authors' `uniformer_base_in1k.pth` (Sense-X/UniFormer image_classification
# README), loaded and converted in memory; see the README for where to get it.
_base_ = ['./uniformer.py']
import mmhybrid.registry  # noqa: E402  (a module: not kept in the config; see README.md)
backbone = dict(
    arch='base',
    drop_path_rate=0.3,
    init_cfg=dict(type='Pretrained', checkpoint='pretrained/uniformer_base_in1k.pth'))
# Neck/head widths: the variant's stage channels, read from the class's arch_zoo (README.md).
backbone_channels = mmhybrid.registry.MODELS.get(_base_.backbone.type).parse_arch(
    backbone['arch'])[1]['embed_dims']
backbone_stage3_channels = backbone_channels[2]
