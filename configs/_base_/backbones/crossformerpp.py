# CrossFormer++ backbones (docs/families/crossformer.md); a variant file
# (crossformerpp_{s,b,l,h}.py) adds the arch. The authors' det/seg configs (cheerss/CrossFormer,
# branch `main`, detection/configs/crossformer_pp/, segmentation/configs/crossformer_pp/) set
# group size 7 and intervals 8, 4, 2, 1 (not the ImageNet 4, 4, 14, 7 / 4, 2, 1, 1, the archs'
# defaults), with adaptive_interval=False; their dense code groups LDA as lda_mode='regional'.
custom_imports = dict(imports=['mmhybrid'], allow_failed_imports=False)
backbone = dict(_delete_=True, type='mmhybrid.CrossFormer', group_size=7, interval=(8, 4, 2, 1),
                lda_mode='regional')
