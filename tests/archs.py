"""Architectures the tests build, in one place.

``CONTRACT_MODELS``: tiny custom archs of every family for the contract tests (fast on 2 CPU
cores); a family joins the shared contract suite by adding one entry: registered type → kwargs
(``'Type/variant'`` for a second entry of one registered type, see :func:`model_type`).

``PARITY_MODELS``: the reduced archs of the authors' parity files (tests/data/parity/README.md),
one entry per file that holds weights: file → (registered type, arch).
"""
CONTRACT_MODELS = {
    # Pretrain size 64 (position biases at 16x16 queries / 2x2 keys in stage 1): every contract
    # size resizes the biases, and 64x64 leaves them untouched.
    'CMT': dict(arch=dict(embed_dims=[8, 16, 32, 64], depths=[1, 1, 2, 1],
                          mlp_ratios=[2, 2, 2, 2], stem_channels=8, img_size=64)),
    # Group size 7 and intervals 8, 4, 2, 1 as released: the contract sizes pad and mask every
    # stage, and 64x64 inputs take the small-map path (min(H, W) <= G) in stages 3-4.
    'CrossFormer': dict(arch=dict(embed_dims=[16, 32, 64, 128], depths=[2, 2, 2, 2],
                                  num_heads=[2, 4, 8, 16])),
    # CrossFormer++: an activation cooling layer after block 2 of stage 3, the ImageNet groups
    # 4,4,14,7 / intervals 4,2,1,1 and regional LDA (the variant's defaults).
    'CrossFormer/pp': dict(arch=dict(embed_dims=[16, 32, 64, 128], depths=[2, 2, 4, 2],
                                     num_heads=[2, 4, 8, 16], acl=True)),
    # Hybrid stage 3 (blocks 0-2 in 4x4 windows, block 3 global): every contract size pads the
    # windows (zeros, no mask); stage 4 global.
    'UniFormer': dict(arch=dict(embed_dims=[8, 16, 32, 48], depths=[1, 1, 4, 1], head_dim=8),
                      window_size=4),
    # Stage 3: an unpruned block, then two pruning blocks (the last pools the scores for stage
    # 4); both stage-4 blocks prune. 64x96 inputs leave 4x6 and 2x3 tokens (odd counts).
    'UniFormerLight': dict(arch=dict(embed_dims=[8, 16, 32, 48], depths=[1, 1, 3, 2],
                                     head_dim=8)),
    'VAN': dict(arch=dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 2, 1],
                          mlp_ratios=[2, 2, 2, 2])),
    # Small windows so that the window padding and ceil-mode pooling run at the contract sizes.
    'HATNet': dict(arch=dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 2, 1], head_dim=8,
                             expansions=[2, 2, 2, 2], window_sizes=[4, 4, 2, 1])),
    'TransCNN': dict(arch=dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 2, 1], head_dim=8,
                               expansions=[2, 2, 2, 2], window_sizes=[4, 4, 2, 1])),
}



def model_type(name: str) -> str:
    """The registered type of a ``CONTRACT_MODELS`` entry (``'CrossFormer/pp'`` → CrossFormer)."""
    return name.split('/', 1)[0]


PARITY_MODELS = {
    # VAN-B0 layout, dims 16..128, depths 1,1,2,1.
    'van_b0_reduced': ('VAN', dict(embed_dims=[16, 32, 80, 128], depths=[1, 1, 2, 1],
                                   mlp_ratios=[8, 8, 4, 4])),
    # CrossFormer-T layout with dims 16..128 and depths 2,2,2,2.
    'crossformer_tiny_reduced': ('CrossFormer', dict(embed_dims=[16, 32, 64, 128],
                                                     depths=[2, 2, 2, 2],
                                                     num_heads=[2, 4, 8, 16])),
    # CrossFormer++-S layout (head_dim 16) with dims 32..256 and depths 2,3,4,2: one activation
    # cooling layer (stage 3, block 2).
    'crossformerpp_small_reduced': ('CrossFormer', dict(embed_dims=[32, 64, 128, 256],
                                                        depths=[2, 3, 4, 2],
                                                        num_heads=[2, 4, 8, 16], acl=True)),
    # UniFormer-S (head_dim 16, stage 3 of 4 blocks for the hybrid windows) and S+ (conv stem).
    'uniformer_small_reduced': ('UniFormer', dict(embed_dims=[16, 32, 80, 128],
                                                  depths=[1, 1, 4, 1], head_dim=16)),
    'uniformer_smallplus_reduced': ('UniFormer', dict(embed_dims=[16, 32, 80, 128],
                                                      depths=[1, 1, 2, 1], head_dim=8,
                                                      conv_stem=True)),
    # UniFormer-light XXS layout (conv stem, mlp 3, heads 8/16, the official prune schedule)
    # with dims 16..128 and depths 1,1,3,2; the classifiers are dropped.
    'uniformer_light_xxs_reduced': ('UniFormerLight', dict(embed_dims=[16, 32, 64, 128],
                                                          depths=[1, 1, 3, 2], head_dim=8)),
    # CMT-Ti layout (the classifier, fc_dim 256 / 100 classes, is dropped).
    'cmt_tiny_reduced': ('CMT', dict(embed_dims=[18, 36, 72, 144], depths=[1, 1, 2, 1],
                                     mlp_ratios=[3.6] * 4, stem_channels=16, img_size=224)),
    'transcnn_small_reduced': ('TransCNN', dict(embed_dims=[16, 32, 64, 128],
                                                depths=[1, 1, 2, 1], head_dim=16,
                                                expansions=[4, 4, 6, 6])),
    # HAT-Net-S with Medium's IRB kernels 5,3,5,3.
    'hatnet_small_reduced': ('HATNet', dict(embed_dims=[16, 32, 80, 128], depths=[1, 1, 2, 1],
                                            head_dim=16, expansions=[8, 8, 4, 4],
                                            kernel_sizes=[5, 3, 5, 3])),
}

# UniFormer's classification code: global attention in stages 3-4 (the default is the official
# dense layout, hybrid 14x14 windows in stage 3).
UNIFORMER_CLASSIFICATION = dict(attn_modes=('global', 'global'))
