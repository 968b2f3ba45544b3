"""Tiny custom archs of every family for the contract tests (fast on 2 CPU cores).

A family joins the shared contract suite by adding one entry: registered type → kwargs.
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
    # Hybrid stage 3 (blocks 0-2 in 4x4 windows, block 3 global): every contract size pads the
    # windows (zeros, no mask); stage 4 global.
    'UniFormer': dict(arch=dict(embed_dims=[8, 16, 32, 48], depths=[1, 1, 4, 1], head_dim=8),
                      window_size=4),
    'VAN': dict(arch=dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 2, 1],
                          mlp_ratios=[2, 2, 2, 2])),
    # Small windows so that the window padding and ceil-mode pooling run at the contract sizes.
    'HATNet': dict(arch=dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 2, 1], head_dim=8,
                             expansions=[2, 2, 2, 2], window_sizes=[4, 4, 2, 1])),
    'TransCNN': dict(arch=dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 2, 1], head_dim=8,
                               expansions=[2, 2, 2, 2], window_sizes=[4, 4, 2, 1])),
}
