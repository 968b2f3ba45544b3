# CrossFormer-L backbone (REFERENCE.md §1; ImageNet-1k top-1 84.0, 92.0M params with the head).
# ImageNet file: the authors' `crossformer-l.pth` (cheerss/CrossFormer README, Google Drive /
# BaiduCloud links), loaded and converted in memory; see the README for where to get it.
# Group size 7 and intervals 8, 4, 2, 1 (the class defaults) as in the official det/seg configs;
# LDA as in the ICLR'22 code that produced the published numbers (lda_mode='iclr').
custom_imports = dict(imports=['mmhybrid'], allow_failed_imports=False)
backbone_channels = [128, 256, 512, 1024]  # the only place these are written
backbone_stage3_channels = backbone_channels[2]
backbone = dict(
    _delete_=True,
    type='mmhybrid.CrossFormer',
    arch='large',
    drop_path_rate=0.5,
    lda_mode='iclr',
    init_cfg=dict(type='Pretrained', checkpoint='pretrained/crossformer-l.pth'))
