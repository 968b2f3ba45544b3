"""TransCNN (v1) and HAT-Net (v2): Vision Transformers with Hierarchical Attention
(Liu et al., arXiv 2106.03180), for dense prediction.

Re-implemented from the paper and from the semantics of the authors' classification code in
``yun-liu/TransCNN`` (``TransCNN.py`` at commit 0bd7463e for v1, ``HAT_Net.py`` at HEAD for
v2; the repository has no licence file, nothing is copied from it). The authors released no
detection or segmentation code: the padding of the window and pooling steps (any input size)
is mmhybrid's own and equals the official computation whenever the official code runs.

Module layout (mmhybrid's own; ``mmhybrid.checkpoint.transcnn`` maps the released files):
``stages.i.downsample`` (stage 0: the conv stem) and ``stages.i.blocks.j.{attn,irb}``.
"""
from typing import Any, ClassVar, Dict, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath

from mmhybrid.registry import MODELS
from ..layers import (Stage, apply_in_groups, contiguous_for_inductor, grouped_attention,
                      init_official_weights_, merge_heads, split_heads, window_layout)
from ..layers.folding import fold_norms_
from .base import NUM_STAGES, HybridBackbone


def _tokens(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` → one group of tokens ``(B, 1, H*W, C)`` with unit channel stride (the
    fused CPU attention kernel needs it; free for a channels-last map)."""
    return x.flatten(2).transpose(1, 2).contiguous()[:, None]


def _to_map(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`_tokens` (a channels-last-strided NCHW view; a contiguous map while
    compiling: torch 2.13's inductor fails to lower that view into the next conv when the sizes
    are dynamic, see ``LayerNorm2d._normalize_channels``)."""
    tokens = tokens[:, 0]
    x = tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], height, width)
    return contiguous_for_inductor(x)


class HMHSA(nn.Module):
    """Hierarchical multi-head self-attention (H-MHSA) on an NCHW map.

    With window side ``g > 1``:

    1. ``qkv = 1x1(norm(x))`` (``q``, ``k``, ``v`` blocks of ``C`` channels, heads contiguous);
    2. ``local``: self-attention inside non-overlapping ``g x g`` windows (row-major);
    3. ``y = grid_norm(x + local)``;
    4. ``global``: queries ``1x1(y)`` at full resolution attend to keys/values
       ``1x1(ds_norm(AvgPool_r(y)))``;
    5. output ``proj(global + y)``.

    With ``g == 1``: plain global attention from the step-1 ``qkv``, output ``proj(global)``.
    (Step 5 adds ``y``, the normalised map of step 3, as the official forward does.)

    Any size: for step 2 the ``qkv`` map is zero-padded at the bottom/right to a multiple of
    ``g`` and padded keys are masked out; the result is cropped before step 3, so the norms only
    see real tokens. Step 4 pools the unpadded map with ``ceil_mode``: a partial cell at the
    bottom/right edge averages only its real tokens (every real token reaches the keys, none
    is dropped, nothing padded is averaged in). At sizes divisible by ``g`` and ``r`` no
    padding happens and the result is the official one.

    Args:
        dim: Number of channels ``C``.
        head_dim: Channels per head (``C`` must be a multiple).
        window_size: Window side ``g`` of the local step; ``1`` for plain global attention.
        pool_ratio: Kernel and stride ``r`` of the average pooling of the global step.
        norm_cfg: Config of the three attention norms (GroupNorm for HAT-Net, BN for TransCNN).
    """

    def __init__(self,
                 dim: int,
                 head_dim: int,
                 window_size: int,
                 pool_ratio: int,
                 norm_cfg: Dict[str, Any]) -> None:
        super().__init__()
        if head_dim <= 0 or dim % head_dim:
            raise ValueError(f'H-MHSA channels {dim} are not a multiple of head_dim {head_dim}')
        self.num_heads = dim // head_dim
        self.head_dim = head_dim
        self.window_size = int(window_size)
        self.pool_ratio = int(pool_ratio)
        self.norm = build_norm_layer(norm_cfg, dim)[1]
        self.qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)
        if self.window_size > 1:
            self.grid_norm = build_norm_layer(norm_cfg, dim)[1]
            self.ds_norm = build_norm_layer(norm_cfg, dim)[1]
            self.q = nn.Conv2d(dim, dim, 1)
            self.kv = nn.Conv2d(dim, dim * 2, 1)

    def switch_to_deploy(self) -> None:
        """The norms that feed only a 1x1 conv folded into it (``grid_norm``'s output is also
        the residual: it stays)."""
        fold_norms_(self, before=[('norm', 'qkv')] + [('ds_norm', 'kv')] * (self.window_size > 1))

    def _local(self, qkv: torch.Tensor) -> torch.Tensor:
        """Window attention of step 2 on the ``(B, 3C, H, W)`` qkv map; returns ``(B, C, H, W)``."""
        def attend(windows: torch.Tensor, key_padding: Optional[torch.Tensor]) -> torch.Tensor:
            q, k, v = split_heads(windows, 3, self.num_heads)
            # Every window holds a real token, so no query sees only padding.
            return merge_heads(grouped_attention(q, k, v, key_padding=key_padding))

        out = apply_in_groups(qkv.permute(0, 2, 3, 1), *window_layout(self.window_size), attend)
        return out.permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[2], x.shape[3]
        qkv = self.qkv(self.norm(x))
        if self.window_size == 1:
            q, k, v = split_heads(_tokens(qkv), 3, self.num_heads)
            return self.proj(_to_map(merge_heads(grouped_attention(q, k, v)), height, width))
        y = self.grid_norm(x + self._local(qkv))
        pooled = y
        if self.pool_ratio > 1:
            pooled = F.avg_pool2d(y, self.pool_ratio, self.pool_ratio, ceil_mode=True,
                                  count_include_pad=False)
        q = split_heads(_tokens(self.q(y)), 1, self.num_heads)[0]
        k, v = split_heads(_tokens(self.kv(self.ds_norm(pooled))), 2, self.num_heads)
        out = _to_map(merge_heads(grouped_attention(q, k, v)), height, width)
        return self.proj(out + y)


class HATNetIRB(nn.Module):
    """HAT-Net inverted residual (pre- and post-norm): norm → 1x1 → act → dw kxk → act →
    1x1 → norm (convs without bias).

    Args:
        dim: Input and output channels.
        hidden_dim: Expanded channels.
        kernel_size: Depth-wise kernel size (odd).
        norm_cfg: Norm config.
        act_cfg: Activation config.
    """

    def __init__(self,
                 dim: int,
                 hidden_dim: int,
                 kernel_size: int,
                 norm_cfg: Dict[str, Any],
                 act_cfg: Dict[str, Any]) -> None:
        super().__init__()
        self.norm_in = build_norm_layer(norm_cfg, dim)[1]
        self.pw1 = nn.Conv2d(dim, hidden_dim, 1, bias=False)
        self.act1 = build_activation_layer(act_cfg)
        self.dw = nn.Conv2d(hidden_dim, hidden_dim, kernel_size, padding=(kernel_size - 1) // 2,
                            groups=hidden_dim, bias=False)
        self.act2 = build_activation_layer(act_cfg)
        self.pw2 = nn.Conv2d(hidden_dim, dim, 1, bias=False)
        self.norm_out = build_norm_layer(norm_cfg, dim)[1]

    def switch_to_deploy(self) -> None:
        """``norm_in`` folded into ``pw1``, ``norm_out`` into ``pw2``."""
        fold_norms_(self, after=[('pw2', 'norm_out')], before=[('norm_in', 'pw1')])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.pw1(self.norm_in(x)))
        x = self.act2(self.dw(x))
        return self.norm_out(self.pw2(x))


class TransCNNIRB(nn.Module):
    """TransCNN (v1) inverted residual (post-norm): 1x1 → norm → act → dw kxk → norm → act →
    1x1 → norm (convs without bias).

    Args:
        dim: Input and output channels.
        hidden_dim: Expanded channels.
        kernel_size: Depth-wise kernel size (odd).
        norm_cfg: Norm config.
        act_cfg: Activation config.
    """

    def __init__(self,
                 dim: int,
                 hidden_dim: int,
                 kernel_size: int,
                 norm_cfg: Dict[str, Any],
                 act_cfg: Dict[str, Any]) -> None:
        super().__init__()
        self.pw1 = nn.Conv2d(dim, hidden_dim, 1, bias=False)
        self.norm1 = build_norm_layer(norm_cfg, hidden_dim)[1]
        self.act1 = build_activation_layer(act_cfg)
        self.dw = nn.Conv2d(hidden_dim, hidden_dim, kernel_size, padding=(kernel_size - 1) // 2,
                            groups=hidden_dim, bias=False)
        self.norm2 = build_norm_layer(norm_cfg, hidden_dim)[1]
        self.act2 = build_activation_layer(act_cfg)
        self.pw2 = nn.Conv2d(hidden_dim, dim, 1, bias=False)
        self.norm3 = build_norm_layer(norm_cfg, dim)[1]

    def switch_to_deploy(self) -> None:
        """Each norm folded into the conv before it."""
        fold_norms_(self, after=[('pw1', 'norm1'), ('dw', 'norm2'), ('pw2', 'norm3')])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.norm1(self.pw1(x)))
        x = self.act2(self.norm2(self.dw(x)))
        return self.norm3(self.pw2(x))


class HMHSABlock(nn.Module):
    """``x + DropPath(HMHSA(x))``, then ``x + DropPath(IRB(x))`` (one DropPath, used twice).

    Args:
        attn: The block's H-MHSA.
        irb: The block's inverted residual.
        drop_path: Stochastic depth rate of this block.
    """

    def __init__(self, attn: nn.Module, irb: nn.Module, drop_path: float) -> None:
        super().__init__()
        self.attn = attn
        self.irb = irb
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(x))
        return x + self.drop_path(self.irb(x))


class ConvStem(nn.Module):
    """Stride-4 stem: conv3x3 s2 → norm → act → conv3x3 s2 (no norm after the second conv).

    Args:
        in_channels: Image channels.
        hidden_channels: Channels after the first conv (16 in the official models).
        out_channels: Channels of the first stage.
        norm_cfg: Norm config.
        act_cfg: Activation config.
    """

    def __init__(self,
                 in_channels: int,
                 hidden_channels: int,
                 out_channels: int,
                 norm_cfg: Dict[str, Any],
                 act_cfg: Dict[str, Any]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, hidden_channels, 3, stride=2, padding=1)
        self.norm = build_norm_layer(norm_cfg, hidden_channels)[1]
        self.act = build_activation_layer(act_cfg)
        self.conv2 = nn.Conv2d(hidden_channels, out_channels, 3, stride=2, padding=1)

    def switch_to_deploy(self) -> None:
        fold_norms_(self, after=[('conv1', 'norm')])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act(self.norm(self.conv1(x))))


class ConvDownsample(nn.Module):
    """HAT-Net downsampling: conv3x3 s2 p1 → norm (any size: ``ceil(H/2)``).

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        norm_cfg: Norm config.
    """

    def __init__(self, in_channels: int, out_channels: int, norm_cfg: Dict[str, Any]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)
        self.norm = build_norm_layer(norm_cfg, out_channels)[1]

    def switch_to_deploy(self) -> None:
        fold_norms_(self, after=[('conv', 'norm')])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


class TwoBranchDownsample(nn.Module):
    """TransCNN's TDB: ``act(norm1(conv3x3 s2 p1(x)) + norm2(1x1(MaxPool2(x))))``.

    The conv branch gives ``ceil(H/2)``, a plain 2x2 max pool ``floor(H/2)``: at odd sizes the
    map is treated as padded to even with ``-inf`` for the pool (``ceil_mode``: the edge cell
    takes the max of its real pixels) and with zeros for the conv (its own zero padding), so
    both branches give ``ceil(H/2)``. At even sizes this is the official computation.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        norm_cfg: Norm config.
        act_cfg: Activation config.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 norm_cfg: Dict[str, Any],
                 act_cfg: Dict[str, Any]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)
        self.norm1 = build_norm_layer(norm_cfg, out_channels)[1]
        self.residual = nn.Conv2d(in_channels, out_channels, 1)
        self.norm2 = build_norm_layer(norm_cfg, out_channels)[1]
        self.act = build_activation_layer(act_cfg)

    def switch_to_deploy(self) -> None:
        fold_norms_(self, after=[('conv', 'norm1'), ('residual', 'norm2')])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.max_pool2d(x, 2, 2, ceil_mode=True)
        return self.act(self.norm1(self.conv(x)) + self.norm2(self.residual(pooled)))


class _HierarchicalAttentionNet(HybridBackbone):
    """Shared construction of TransCNN and HAT-Net (see the subclasses)."""

    arch_keys = ('embed_dims', 'depths', 'head_dim', 'expansions')
    irb_class: ClassVar[type] = nn.Module
    default_norm_cfg: ClassVar[Dict[str, Any]] = {}

    def __init__(self,
                 arch: Union[str, Dict[str, Any]] = 'small',
                 stem_channels: int = 16,
                 norm_cfg: Optional[Dict[str, Any]] = None,
                 act_cfg: Optional[Dict[str, Any]] = None,
                 **kwargs: Any) -> None:
        super().__init__(arch=arch, **kwargs)
        norm_cfg = dict(self.default_norm_cfg) if norm_cfg is None else dict(norm_cfg)
        act_cfg = dict(type='SiLU') if act_cfg is None else dict(act_cfg)
        s = self.arch_settings
        dims, depths = s['embed_dims'], s['depths']
        dpr = self.drop_path_rates(depths)
        for i in range(NUM_STAGES):
            if i == 0:
                downsample = ConvStem(self.in_channels, stem_channels, dims[0], norm_cfg,
                                      act_cfg)
            else:
                downsample = self._build_downsample(dims[i - 1], dims[i], norm_cfg, act_cfg)
            blocks = [
                HMHSABlock(
                    HMHSA(dims[i], s['head_dim'], s['window_sizes'][i], s['pool_ratios'][i],
                          norm_cfg),
                    self.irb_class(dims[i], int(dims[i] * s['expansions'][i]),
                                   s['kernel_sizes'][i], norm_cfg, act_cfg),
                    dpr[i][j]) for j in range(depths[i])
            ]
            self.stages.append(Stage(downsample, blocks, self.cp_stages[i]))
        # The official initialisation: conv weights trunc_normal(std .02), zero biases; norms
        # keep their (1, 0) defaults.
        init_official_weights_(self, conv='trunc_normal')
        self._finish_build(dims)

    def _build_downsample(self, in_channels: int, out_channels: int, norm_cfg: Dict[str, Any],
                          act_cfg: Dict[str, Any]) -> nn.Module:
        raise NotImplementedError

    @classmethod
    def validate_arch(cls, settings: Dict[str, Any]) -> None:
        super().validate_arch(settings)
        for key in ('embed_dims', 'depths', 'expansions', 'window_sizes', 'pool_ratios',
                    'kernel_sizes'):
            values = settings[key]
            if not isinstance(values, (list, tuple)):
                raise ValueError(f'{cls.__name__} arch[{key!r}] must be a list of 4 values, '
                                 f'got {values!r}')
            minimum = 0 if key == 'depths' else 1
            if any(not isinstance(v, (int, float)) or isinstance(v, bool) or v < minimum
                   for v in values):
                raise ValueError(f'{cls.__name__} arch[{key!r}] entries must be >= {minimum}, '
                                 f'got {list(values)}')
        head_dim = settings['head_dim']
        if isinstance(head_dim, bool) or not isinstance(head_dim, int) or head_dim <= 0:
            raise ValueError(f'{cls.__name__} arch["head_dim"] must be a positive int, '
                             f'got {head_dim!r}')
        bad = [d for d in settings['embed_dims'] if d % head_dim]
        if bad:
            raise ValueError(f'{cls.__name__} arch: embed_dims {list(settings["embed_dims"])} '
                             f'must be multiples of head_dim {head_dim}')
        if any(k % 2 == 0 for k in settings['kernel_sizes']):
            raise ValueError(f'{cls.__name__} arch["kernel_sizes"] must be odd, got '
                             f'{list(settings["kernel_sizes"])}')


@MODELS.register_module()
class HATNet(_HierarchicalAttentionNet):
    """HAT-Net: Vision Transformers with Hierarchical Attention (Liu et al., 2024), as a
    dense-prediction backbone.

    Semantics of ``HAT_Net.py`` in ``yun-liu/TransCNN`` (re-implemented; the repository has no
    licence): GroupNorm(1, C) (eps 1e-6) everywhere, SiLU, stem conv-GN-SiLU-conv, conv3x3 s2
    + GN between stages, blocks of H-MHSA (:class:`HMHSA`) and a pre/post-norm inverted
    residual. Any input size runs (see :class:`HMHSA` for the padding); outputs are
    ``ceil(H/s) x ceil(W/s)``. The official ``proj_norm`` weights are never used by the model
    and are dropped on conversion.

    Args:
        arch: ``'tiny'``, ``'small'``, ``'medium'``, ``'large'``, or a dict with
            ``embed_dims``, ``depths``, ``head_dim``, ``expansions`` and optionally
            ``window_sizes`` (default 8, 7, 7, 1), ``pool_ratios`` (8, 4, 2, 1) and
            ``kernel_sizes`` (IRB depth-wise kernels, 3, 3, 3, 3).
        stem_channels: Channels after the first stem conv.
        norm_cfg: Norm of every layer; ``None`` means ``dict(type='GN', num_groups=1,
            eps=1e-6)``.
        act_cfg: Activation; ``None`` means SiLU.
        **kwargs: The contract arguments of :class:`HybridBackbone`: ``out_indices``,
            ``frozen_stages``, ``norm_eval``, ``with_cp``, ``drop_path_rate``, ``out_norm_cfg``,
            ``channels_last`` and ``init_cfg`` (``Pretrained`` accepts the official ``HAT-
            Net_*.pth`` files).
    """

    arch_zoo = {
        'tiny': dict(embed_dims=[48, 96, 240, 384], depths=[2, 2, 6, 3], head_dim=48,
                     expansions=[8, 8, 4, 4]),
        'small': dict(embed_dims=[64, 128, 320, 512], depths=[2, 3, 8, 3], head_dim=64,
                      expansions=[8, 8, 4, 4]),
        'medium': dict(embed_dims=[64, 128, 320, 512], depths=[3, 6, 18, 3], head_dim=64,
                       expansions=[8, 8, 4, 4], kernel_sizes=[5, 3, 5, 3]),
        'large': dict(embed_dims=[64, 128, 320, 640], depths=[3, 8, 27, 3], head_dim=64,
                      expansions=[8, 8, 4, 4]),
    }
    arch_aliases = {'t': 'tiny', 's': 'small', 'm': 'medium', 'l': 'large'}
    arch_defaults = dict(window_sizes=[8, 7, 7, 1], pool_ratios=[8, 4, 2, 1],
                         kernel_sizes=[3, 3, 3, 3])
    family = 'hatnet'
    # Depthwise and 1x1 convolutions dominate: channels-last is faster on the CPU.
    default_channels_last = True
    irb_class = HATNetIRB
    default_norm_cfg = dict(type='GN', num_groups=1, eps=1e-6)

    def _build_downsample(self, in_channels: int, out_channels: int, norm_cfg: Dict[str, Any],
                          act_cfg: Dict[str, Any]) -> nn.Module:
        return ConvDownsample(in_channels, out_channels, norm_cfg)


@MODELS.register_module()
class TransCNN(_HierarchicalAttentionNet):
    """TransCNN: Transformer in Convolutional Neural Networks (Liu et al., arXiv 2106.03180v2),
    as a dense-prediction backbone.

    Semantics of ``TransCNN.py`` in ``yun-liu/TransCNN`` (commit 0bd7463e; re-implemented, the
    repository has no licence): BatchNorm everywhere, SiLU, stem conv-BN-SiLU-conv, the
    two-branch downsampling :class:`TwoBranchDownsample` between stages, blocks of H-MHSA
    (:class:`HMHSA`, BN norms) and a post-norm inverted residual. Trained at 256x256. Any input
    size runs; outputs are ``ceil(H/s) x ceil(W/s)``.

    Args:
        arch: ``'tiny'``, ``'small'``, ``'medium'``, ``'large'``, or a dict with
            ``embed_dims``, ``depths``, ``head_dim``, ``expansions`` and optionally
            ``window_sizes`` (default 8, 8, 8, 1), ``pool_ratios`` (8, 4, 2, 1) and
            ``kernel_sizes`` (IRB depth-wise kernels, 5, 3, 5, 3 as hard-coded officially).
        stem_channels: Channels after the first stem conv.
        norm_cfg: Norm of every layer; ``None`` means ``dict(type='BN')`` (use ``SyncBN`` for
            multi-GPU training).
        act_cfg: Activation; ``None`` means SiLU.
        **kwargs: The contract arguments of :class:`HybridBackbone`: ``out_indices``,
            ``frozen_stages``, ``norm_eval``, ``with_cp``, ``drop_path_rate``, ``out_norm_cfg``,
            ``channels_last`` and ``init_cfg`` (``Pretrained`` accepts the official
            ``TransCNN-*.pth`` files).
    """

    arch_zoo = {
        'tiny': dict(embed_dims=[64, 128, 256, 512], depths=[2, 2, 4, 2], head_dim=64,
                     expansions=[4, 4, 4, 4]),
        'small': dict(embed_dims=[64, 128, 256, 512], depths=[3, 4, 8, 3], head_dim=64,
                      expansions=[4, 4, 6, 6]),
        'medium': dict(embed_dims=[64, 128, 320, 640], depths=[3, 4, 12, 3], head_dim=64,
                       expansions=[4, 4, 6, 6]),
        'large': dict(embed_dims=[64, 128, 384, 768], depths=[3, 4, 16, 3], head_dim=64,
                      expansions=[4, 4, 6, 6]),
    }
    arch_aliases = {'t': 'tiny', 's': 'small', 'm': 'medium', 'l': 'large'}
    arch_defaults = dict(window_sizes=[8, 8, 8, 1], pool_ratios=[8, 4, 2, 1],
                         kernel_sizes=[5, 3, 5, 3])
    family = 'transcnn'
    # Depthwise and 1x1 convolutions dominate: channels-last is faster on the CPU.
    default_channels_last = True
    irb_class = TransCNNIRB
    default_norm_cfg = dict(type='BN')

    def _build_downsample(self, in_channels: int, out_channels: int, norm_cfg: Dict[str, Any],
                          act_cfg: Dict[str, Any]) -> nn.Module:
        return TwoBranchDownsample(in_channels, out_channels, norm_cfg, act_cfg)
