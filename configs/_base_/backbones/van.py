# VAN backbones (docs/families/van.md); a variant file (van_b{0,1,2,3}.py) adds the arch.
# ImageNet files: the authors' `van_b*.pth.tar` (Visual-Attention-Network/VAN-Classification
# README), loaded and converted in memory; see the README for where to get them.
custom_imports = dict(imports=['mmhybrid'], allow_failed_imports=False)
backbone = dict(_delete_=True, type='mmhybrid.VAN')
