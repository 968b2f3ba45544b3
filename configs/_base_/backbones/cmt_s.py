# CMT-S backbone (REFERENCE.md §3; ImageNet-1k top-1 83.5, pretrained at 224x224).
# ImageNet file: the authors' `cmt_small.pth` (github.com/ggjy/CMT.pytorch releases, tag release-v1,
# linked from huawei-noah/Efficient-AI-Backbones cmt_pytorch/README.md), loaded and converted in
# memory; its position biases are resized to the input at run time.
# No official dense-prediction drop_path exists: this is the ImageNet training value.
custom_imports = dict(imports=['mmhybrid'], allow_failed_imports=False)
backbone_channels = [64, 128, 256, 512]  # the only place these are written
backbone_stage3_channels = backbone_channels[2]
backbone = dict(
    _delete_=True,
    type='mmhybrid.CMT',
    arch='small',
    drop_path_rate=0.1,
    init_cfg=dict(type='Pretrained', checkpoint='pretrained/cmt_small.pth'))
