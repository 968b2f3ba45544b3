# CMT backbones (docs/families/cmt.md); a variant file (cmt_{ti,xs,s,b}.py) adds the arch.
# ImageNet files: the authors' `cmt_*.pth` (github.com/ggjy/CMT.pytorch releases, tag release-v1,
# linked from huawei-noah/Efficient-AI-Backbones cmt_pytorch/README.md), loaded and converted in
# memory; their position biases are resized to the input at run time.
# No official dense-prediction drop_path exists: the variants use the ImageNet training values.
custom_imports = dict(imports=['mmhybrid'], allow_failed_imports=False)
backbone = dict(_delete_=True, type='mmhybrid.CMT')
