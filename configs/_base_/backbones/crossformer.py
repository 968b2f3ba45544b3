# CrossFormer backbones (docs/families/crossformer.md); a variant file
# (crossformer_{t,s,b,l}.py) adds the arch.
# Group size 7 and intervals 8, 4, 2, 1 (the class defaults) as in the official det/seg configs;
# LDA as in the ICLR'22 code that produced the published numbers (lda_mode='iclr').
custom_imports = dict(imports=['mmhybrid'], allow_failed_imports=False)
backbone = dict(_delete_=True, type='mmhybrid.CrossFormer', lda_mode='iclr')
