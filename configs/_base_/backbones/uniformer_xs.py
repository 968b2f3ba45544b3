# UniFormer-light XS backbone (docs/families/uniformer.md). Drop path 0.15 as the official
# object_detection/exp_light/mask_rcnn_1x_xs/config.py (the segmentation configs set their own).
# ImageNet file: the authors' `uniformer_xs_224_in1k.pth` (Sense-X/UniFormer image_classification
# README, "Lightweight models"; the 224x224 model, as the official dense run.sh files load), loaded
# and converted in memory; see the README for where to get it.
_base_ = ['./uniformer_light.py']
import mmhybrid.registry  # noqa: E402  (a module: not kept in the config; see README.md)
backbone = dict(
    arch='xs',
    drop_path_rate=0.15,
    init_cfg=dict(type='Pretrained', checkpoint='pretrained/uniformer_xs_224_in1k.pth'))
# Neck/head widths: the variant's stage channels, read from the class's arch_zoo (README.md).
backbone_channels = mmhybrid.registry.MODELS.get(_base_.backbone.type).parse_arch(
    backbone['arch'])[1]['embed_dims']
backbone_stage3_channels = backbone_channels[2]
