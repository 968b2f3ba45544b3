"""Tiny custom archs of every family for the contract tests (fast on 2 CPU cores).

A family joins the shared contract suite by adding one entry: registered type → kwargs.
"""
CONTRACT_MODELS = {
    # Pretrain size 64 (position biases at 16x16 queries / 2x2 keys in stage 1): every contract
    # size resizes the biases, and 64x64 leaves them untouched.
    'CMT': dict(arch=dict(embed_dims=[8, 16, 32, 64], depths=[1, 1, 2, 1],
                          mlp_ratios=[2, 2, 2, 2], stem_channels=8, img_size=64)),
    'VAN': dict(arch=dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 2, 1],
                          mlp_ratios=[2, 2, 2, 2])),
}
