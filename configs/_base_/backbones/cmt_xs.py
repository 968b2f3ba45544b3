# CMT-XS backbone (REFERENCE.md §3; ImageNet-1k top-1 81.8, pretrained at 192x192).
# ImageNet file: the authors' `cmt_xs.pth` (github.com/ggjy/CMT.pytorch releases, tag release-v1,
# linked from huawei-noah/Efficient-AI-Backbones cmt_pytorch/README.md), loaded and converted in
# memory; its position biases are resized to the input at run time.
# No official dense-prediction drop_path exists: this is the ImageNet training value.
custom_imports = dict(imports=['mmhybrid'], allow_failed_imports=False)
backbone_channels = [52, 104, 208, 416]  # the only place these are written
backbone_stage3_channels = backbone_channels[2]
backbone = dict(
    _delete_=True,
    type='mmhybrid.CMT',
    arch='xsmall',
    drop_path_rate=0.08,
    init_cfg=dict(type='Pretrained', checkpoint='pretrained/cmt_xs.pth'))
