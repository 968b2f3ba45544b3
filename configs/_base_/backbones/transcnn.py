# TransCNN (v1) backbones (docs/families/transcnn_hatnet.md); a variant file (transcnn_small.py)
# adds the arch.
# TransCNN is all BatchNorm: SyncBN here, as OpenMMLab does for BN backbones at 2 images per
# GPU (the released weights load unchanged; on one CPU process it acts as plain BN).
# drop_path_rate 0.1 as PVT's dense backbones (the paper follows PVT's recipes).
custom_imports = dict(imports=['mmhybrid'], allow_failed_imports=False)
backbone = dict(
    _delete_=True,
    type='mmhybrid.TransCNN',
    drop_path_rate=0.1,
    norm_cfg=dict(type='SyncBN'))
