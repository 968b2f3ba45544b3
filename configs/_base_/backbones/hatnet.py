# HAT-Net backbones (docs/families/transcnn_hatnet.md); a variant file
# (hatnet_{tiny,small,medium,large}.py) adds the arch. ImageNet files: the authors'
# `HAT-Net_*.pth` (yun-liu/TransCNN README, GitHub release yun-liu/HAT-Net v2.0), loaded and
# converted in memory; see the README for where to get them.
# drop_path_rate 0.1 as PVT's dense backbones (the HAT-Net paper follows PVT's recipes).
custom_imports = dict(imports=['mmhybrid'], allow_failed_imports=False)
backbone = dict(_delete_=True, type='mmhybrid.HATNet', drop_path_rate=0.1)
