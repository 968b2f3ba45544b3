# HAT-Net-Small backbone (REFERENCE.md §4; ImageNet-1k top-1 82.6 at 224).
# ImageNet file: the authors' `HAT-Net_Small.pth` (yun-liu/TransCNN README, GitHub release
# yun-liu/HAT-Net v2.0), loaded and converted in memory; see the README for where to get it.
# drop_path_rate 0.1 as PVT's dense backbones (the HAT-Net paper follows PVT's recipes).
custom_imports = dict(imports=['mmhybrid'], allow_failed_imports=False)
backbone_channels = [64, 128, 320, 512]  # the only place these are written
backbone_stage3_channels = backbone_channels[2]
backbone = dict(
    _delete_=True,
    type='mmhybrid.HATNet',
    arch='small',
    drop_path_rate=0.1,
    init_cfg=dict(type='Pretrained', checkpoint='pretrained/HAT-Net_Small.pth'))
