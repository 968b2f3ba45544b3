"""The vocabulary the five papers are written in: layers used by two or more backbones.

One concept per file: ``attention`` (the SDPA core with broadcast bias and padding masks),
``padding`` (pad to a multiple and crop), ``windows`` (group/window partition and merge),
``stage`` (downsample + blocks + per-block checkpointing), ``init`` (the official default
initialisation), ``position_bias`` (resizing dense attention biases), ``folding`` (BatchNorms,
layer scales and identity taps folded into the layers next to them, for ``switch_to_deploy``),
``mlp`` (the token MLP), ``norm`` (LayerNorm on NCHW maps, output norms), ``checkpoint``
(activation checkpointing) and ``tracing`` (what exported and compiled graphs need).
"""
from .attention import (PADDING_MASK_VALUE, AttentionKernel, TokenAttention, attention_kernel,
                        detached_without_autograd, explicit_attention, grouped_attention,
                        merge_heads, padding_bias, split_heads)
from .checkpoint import maybe_checkpoint
from .folding import ChannelAffine
from .init import init_official_weights_
from .mlp import Mlp
from .norm import LayerNorm2d, build_out_norm
from .padding import ceil_div, crop_to, pad_to_multiple, padding_map, same_size
from .position_bias import cubic_resize_matrix, resize_position_bias
from .stage import Stage
from .tracing import contiguous_for_inductor, lowering_for_inductor
from .windows import (AxisLayout, apply_in_groups, group_shape, merge_groups, partition_groups,
                      window_layout)

__all__ = [
    'AttentionKernel', 'AxisLayout', 'ChannelAffine', 'LayerNorm2d', 'Mlp', 'PADDING_MASK_VALUE',
    'Stage', 'TokenAttention', 'apply_in_groups', 'attention_kernel', 'build_out_norm',
    'ceil_div', 'contiguous_for_inductor', 'crop_to', 'cubic_resize_matrix',
    'detached_without_autograd',
    'explicit_attention', 'group_shape', 'grouped_attention', 'init_official_weights_',
    'lowering_for_inductor', 'maybe_checkpoint', 'merge_groups', 'merge_heads',
    'pad_to_multiple', 'padding_bias', 'padding_map', 'partition_groups',
    'resize_position_bias', 'same_size', 'split_heads', 'window_layout'
]
