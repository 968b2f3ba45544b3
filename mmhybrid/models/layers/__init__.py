"""The vocabulary the five papers are written in: layers used by two or more backbones.

One concept per file: ``attention`` (the SDPA core with broadcast bias and padding masks),
``attention_grad`` (its backward for learnable biases: probabilities recomputed, not stored),
``padding`` (pad to a multiple and crop), ``windows`` (group/window partition and merge), ``stage``
(downsample + blocks + per-block checkpointing), ``init`` (the official default initialisation),
``position_bias`` (resizing dense attention biases, whole or in bands of query rows), ``residual``
(residual additions in place where that is exact), ``pointwise`` (1x1 convs on channels-last maps
as matrix products), ``act_norm`` (GELU then BatchNorm storing one map in training), ``fusion``
(inference-only folds of BatchNorms and residuals into convs, conv and GELU in one call, GELU and
BatchNorm in place on fresh maps; the same folds done once by ``switch_to_deploy``), ``mlp`` (the token MLP), ``norm`` (LayerNorm on NCHW maps,
output norms), ``linear`` (``Linear``: linear layers on oneDNN's products on the CPU),
``checkpoint`` (activation checkpointing) and ``chunking`` (inference on large maps in bands of
rows, the layout test ``is_channels_last``; ``eager_inference``, when such eager-only paths run;
``lowering_for_inductor``, when forms that inductor can lower with dynamic sizes replace them).
"""
from .act_norm import GeluBatchNorm, gelu_then_norm
from .attention import (PADDING_MASK_VALUE, TokenAttention, grouped_attention, merge_heads,
                        padding_bias, split_heads)
from .attention_grad import RecomputedBiasAttention, recomputed_bias_attention
from .checkpoint import maybe_checkpoint
from .chunking import (eager_inference, is_channels_last, lowering_for_inductor, map_row_bands,
                       rows_per_band, untraced_eager)
from .init import init_official_weights_
from .linear import Linear
from .mlp import Mlp
from .norm import LayerNorm2d, build_out_norm
from .padding import ceil_div, crop_to, pad_to_multiple, padding_map, same_size
from .pointwise import pointwise_conv, pointwise_linear
from .position_bias import RowBandBias, cubic_resize_matrix, resize_position_bias
from .residual import add_residual
from .stage import Stage
from .windows import (AxisLayout, apply_in_groups, group_shape, merge_groups, partition_groups,
                      window_layout)

__all__ = [
    'AxisLayout', 'GeluBatchNorm', 'LayerNorm2d', 'Linear', 'Mlp', 'PADDING_MASK_VALUE',
    'RecomputedBiasAttention', 'RowBandBias', 'Stage', 'TokenAttention', 'add_residual', 'apply_in_groups',
    'build_out_norm', 'ceil_div', 'crop_to', 'cubic_resize_matrix', 'eager_inference',
    'gelu_then_norm',
    'group_shape', 'grouped_attention', 'init_official_weights_', 'is_channels_last',
    'lowering_for_inductor',
    'map_row_bands',
    'maybe_checkpoint', 'merge_groups', 'merge_heads', 'pad_to_multiple', 'padding_bias',
    'padding_map', 'partition_groups', 'pointwise_conv', 'pointwise_linear',
    'recomputed_bias_attention',
    'resize_position_bias', 'rows_per_band', 'same_size', 'split_heads', 'untraced_eager',
    'window_layout'
]
