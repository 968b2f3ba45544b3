# VAN-B2 (REFERENCE.md §5). The ImageNet file is the authors' `van_b2.pth.tar`
# (released as van_base_828.pth.tar); see the README for where to get it.
custom_imports = dict(imports=['mmhybrid'], allow_failed_imports=False)
backbone_channels = [64, 128, 320, 512]
backbone = dict(
    _delete_=True,
    type='mmhybrid.VAN',
    arch='b2',
    drop_path_rate=0.2,
    init_cfg=dict(type='Pretrained', checkpoint='pretrained/van_b2.pth.tar'))
