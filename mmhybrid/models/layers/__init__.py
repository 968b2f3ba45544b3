"""The vocabulary the five papers are written in: layers used by two or more backbones.

One concept per file: ``attention`` (the SDPA core with broadcast bias and padding masks),
``padding`` (pad to a multiple and crop), ``windows`` (group/window partition and merge),
``stage`` (downsample + blocks + per-block checkpointing), ``init`` (the official default
initialisation), ``position_bias`` (resizing dense attention biases), ``mlp`` (the token MLP), ``norm`` (LayerNorm on
NCHW maps, output norms) and ``checkpoint`` (activation checkpointing).
"""
from .attention import (PADDING_MASK_VALUE, TokenAttention, grouped_attention, merge_heads,
                        padding_bias, split_heads)
from .checkpoint import maybe_checkpoint
from .init import init_official_weights_
from .mlp import Mlp
from .norm import LayerNorm2d, build_out_norm
from .padding import ceil_div, crop_to, pad_to_multiple, padding_map, same_size
from .position_bias import resize_position_bias
from .stage import Stage
from .windows import (AxisLayout, apply_in_groups, group_shape, merge_groups, partition_groups,
                      window_layout)

__all__ = [
    'AxisLayout', 'LayerNorm2d', 'Mlp', 'PADDING_MASK_VALUE', 'Stage', 'TokenAttention',
    'apply_in_groups', 'build_out_norm', 'ceil_div', 'crop_to', 'group_shape', 'grouped_attention',
    'init_official_weights_', 'maybe_checkpoint', 'merge_groups', 'merge_heads',
    'pad_to_multiple', 'padding_bias', 'padding_map', 'partition_groups',
    'resize_position_bias', 'same_size', 'split_heads', 'window_layout'
]
