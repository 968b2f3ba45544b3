# VAN-B0 backbone (REFERENCE.md §5; ImageNet-1k top-1 75.4).
# ImageNet file: the authors' `van_b0.pth.tar` (Visual-Attention-Network/VAN-Classification
# README), loaded and converted in memory; see the README for where to get it.
custom_imports = dict(imports=['mmhybrid'], allow_failed_imports=False)
backbone_channels = [32, 64, 160, 256]  # the only place these are written
backbone_stage3_channels = backbone_channels[2]
backbone = dict(
    _delete_=True,
    type='mmhybrid.VAN',
    arch='b0',
    drop_path_rate=0.1,
    init_cfg=dict(type='Pretrained', checkpoint='pretrained/van_b0.pth.tar'))
