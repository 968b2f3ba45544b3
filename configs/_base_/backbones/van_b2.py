# VAN-B2 backbone (REFERENCE.md §5; ImageNet-1k top-1 82.8).
# ImageNet file: the authors' `van_b2.pth.tar` (Visual-Attention-Network/VAN-Classification
# README), loaded and converted in memory; see the README for where to get it.
custom_imports = dict(imports=['mmhybrid'], allow_failed_imports=False)
backbone_channels = [64, 128, 320, 512]  # the only place these are written
backbone_stage3_channels = backbone_channels[2]
backbone = dict(
    _delete_=True,
    type='mmhybrid.VAN',
    arch='b2',
    drop_path_rate=0.2,
    init_cfg=dict(type='Pretrained', checkpoint='pretrained/van_b2.pth.tar'))
