"""Tiny custom archs of every family for the contract tests (fast on 2 CPU cores).

A family joins the shared contract suite by adding one entry: registered type → kwargs.
"""
CONTRACT_MODELS = {
    'VAN': dict(arch=dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 2, 1],
                          mlp_ratios=[2, 2, 2, 2])),
}
