# TransCNN-Small (v1) backbone (REFERENCE.md §4; ImageNet-1k top-1 83.1 at 256).
# ImageNet file: the authors' `TransCNN-Small.pth` (yun-liu/TransCNN README at commit 0bd7463e,
# GitHub release yun-liu/TransCNN v1.0), loaded and converted in memory.
# TransCNN is all BatchNorm: SyncBN here, as OpenMMLab does for BN backbones at 2 images per
# GPU (the released weights load unchanged; on one CPU process it acts as plain BN).
# drop_path_rate 0.1 as PVT's dense backbones (the paper follows PVT's recipes).
custom_imports = dict(imports=['mmhybrid'], allow_failed_imports=False)
backbone_channels = [64, 128, 256, 512]  # the only place these are written
backbone_stage3_channels = backbone_channels[2]
backbone = dict(
    _delete_=True,
    type='mmhybrid.TransCNN',
    arch='small',
    drop_path_rate=0.1,
    norm_cfg=dict(type='SyncBN'),
    init_cfg=dict(type='Pretrained', checkpoint='pretrained/TransCNN-Small.pth'))
