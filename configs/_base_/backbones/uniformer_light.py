# UniFormer-light backbones as the official detection/segmentation code runs them
# (docs/families/uniformer.md): conv stem, convolutional stages 1-2, global attention with a
# class token and Evo-ViT token pruning in stages 3-4, a new LayerNorm (eps 1e-6) on each output.
# A variant file (uniformer_{xxs,xs}.py) adds the arch.
custom_imports = dict(imports=['mmhybrid'], allow_failed_imports=False)
backbone = dict(
    _delete_=True,
    type='mmhybrid.UniFormerLight')
