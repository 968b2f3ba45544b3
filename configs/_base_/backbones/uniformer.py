# UniFormer backbones as the official detection/segmentation code runs them
# (docs/families/uniformer.md):
# hybrid stage 3 (block i global when (i + 1) % 4 == 0, 14x14 windows otherwise), global stage 4,
# a new LayerNorm (eps 1e-6) on each output. A variant file (uniformer_{s,b}.py) adds the arch.
custom_imports = dict(imports=['mmhybrid'], allow_failed_imports=False)
backbone = dict(
    _delete_=True,
    type='mmhybrid.UniFormer',
    attn_modes=('hybrid', 'global'),
    window_size=14)
