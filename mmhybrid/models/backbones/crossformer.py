"""CrossFormer (Wang et al., ICLR 2022, arXiv 2108.00154), for dense prediction.

Semantics follow the authors' code (``cheerss/CrossFormer``): the cross-scale embedding layers
(CEL), short/long distance attention (SDA/LDA) with the dynamic position bias (DPB), and both
official LDA groupings (``lda_mode``). The module layout is mmhybrid's own
(``stages.i.{downsample,blocks}``); ``mmhybrid.checkpoint.crossformer`` maps the released
ImageNet files onto it.
"""
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer
from mmcv.cnn.bricks import DropPath
from mmengine.model.weight_init import trunc_normal_

from mmhybrid.registry import MODELS
from ..layers import LayerNorm2d, maybe_checkpoint
from .base import NUM_STAGES, HybridBackbone

# The official codes mask padded keys by adding -1e6 (not -inf): a group made only of padding
# then still has a finite softmax (its outputs are discarded with the padding).
PADDING_MASK_VALUE = -1e6
LDA_MODES = ('iclr', 'regional')
# Per-axis group layout: (tokens per group along the axis, sampling stride along the axis).
AxisLayout = Tuple[int, int]


def cel_channel_splits(channels: int, num_kernels: int) -> List[int]:
    """Channels of each conv of a cross-scale embedding layer (larger kernel, fewer channels).

    ``C/2, C/4, ...`` with the last kernel getting the same share as the one before it, e.g.
    ``C/2, C/4, C/8, C/8`` for four kernels and ``C/2, C/2`` for two.
    """
    if num_kernels == 1:
        return [channels]
    splits = [channels // 2**(i + 1) for i in range(num_kernels - 1)]
    return splits + [splits[-1]]


class DynamicPositionBias(nn.Module):
    """DPB: an MLP mapping a relative offset ``(dy, dx)`` to one attention bias per head.

    ``pos_proj`` (2 → p), then ``pos1``, ``pos2`` = [LayerNorm, ReLU, Linear(p → p)] and ``pos3``
    = [LayerNorm, ReLU, Linear(p → heads)], in sequence without residuals. Works for any group
    shape, so no interpolation is ever needed.

    Args:
        num_heads: Number of attention heads (one bias each).
        pos_dim: Hidden width ``p`` of the MLP.
    """

    def __init__(self, num_heads: int, pos_dim: int) -> None:
        super().__init__()
        self.pos_proj = nn.Linear(2, pos_dim)
        self.pos1 = nn.Sequential(nn.LayerNorm(pos_dim), nn.ReLU(), nn.Linear(pos_dim, pos_dim))
        self.pos2 = nn.Sequential(nn.LayerNorm(pos_dim), nn.ReLU(), nn.Linear(pos_dim, pos_dim))
        self.pos3 = nn.Sequential(nn.LayerNorm(pos_dim), nn.ReLU(), nn.Linear(pos_dim, num_heads))

    def forward(self, group_h: int, group_w: int) -> torch.Tensor:
        """Returns the ``(heads, N, N)`` bias of a ``group_h x group_w`` group (``N = Gh*Gw``)."""
        weight = self.pos_proj.weight
        dy = torch.arange(1 - group_h, group_h, device=weight.device)
        dx = torch.arange(1 - group_w, group_w, device=weight.device)
        offsets = torch.stack(torch.meshgrid(dy, dx, indexing='ij'), dim=-1).reshape(-1, 2)
        table = self.pos3(self.pos2(self.pos1(self.pos_proj(offsets.to(weight.dtype)))))
        ys = torch.arange(group_h, device=weight.device)
        xs = torch.arange(group_w, device=weight.device)
        coords = torch.stack(torch.meshgrid(ys, xs, indexing='ij')).flatten(1)  # 2, N
        rel = coords[:, :, None] - coords[:, None, :]  # 2, N, N
        index = (rel[0] + group_h - 1) * (2 * group_w - 1) + rel[1] + group_w - 1
        return table[index].permute(2, 0, 1)


class CrossFormerAttention(nn.Module):
    """Multi-head self-attention inside groups, biased by the DPB, through SDPA.

    Args:
        dim: Number of channels.
        num_heads: Number of heads.
        qkv_bias: Learnable bias of the qkv projection.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        # The official code builds the DPB with `dim // 4`, which it divides by 4 again.
        self.pos = DynamicPositionBias(num_heads, (dim // 4) // 4)
        self.proj = nn.Linear(dim, dim)

    def forward(self,
                x: torch.Tensor,
                group_shape: Tuple[int, int],
                key_padding: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Attention within each group.

        Args:
            x: ``(B, num_groups, N, C)`` tokens, each group laid out row-major as
                ``group_shape``.
            group_shape: ``(Gh, Gw)`` with ``Gh * Gw = N``.
            key_padding: ``(num_groups, N)``, True where a token is padding, or None.
        """
        batch, num_groups, num_tokens, channels = x.shape
        # 4-D q, k, v (the fused SDPA kernels accept no more dimensions).
        qkv = self.qkv(x).reshape(batch * num_groups, num_tokens, 3, self.num_heads,
                                  channels // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # B*nG, heads, N, d
        # Always a 4-D mask: PyTorch's fused CPU kernel takes only 4-D masks (a 3-D one falls
        # back to the math path, which materialises the logits).
        bias = self.pos(*group_shape).to(q.dtype)[None]  # 1, heads, N, N
        if key_padding is not None:
            fill = max(PADDING_MASK_VALUE, -torch.finfo(q.dtype).max / 4)  # finite in fp16
            mask = torch.zeros(key_padding.shape, dtype=q.dtype, device=q.device)
            mask = mask.masked_fill(key_padding, fill)
            bias = bias + mask[:, None, None, :]  # nG, heads, N, N
            if batch > 1:
                bias = bias.repeat(batch, 1, 1, 1)  # B*nG, heads, N, N
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        x = x.transpose(1, 2).reshape(batch, num_groups, num_tokens, channels)
        return self.proj(x)


class CrossFormerMlp(nn.Module):
    """Token MLP: Linear → act → Linear.

    Args:
        dim: Input and output channels.
        hidden_dim: Hidden channels.
        act_cfg: Activation config.
    """

    def __init__(self, dim: int, hidden_dim: int, act_cfg: Dict[str, Any]) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = build_activation_layer(act_cfg)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def partition_groups(x: torch.Tensor, layout_h: AxisLayout, layout_w: AxisLayout) -> torch.Tensor:
    """Splits a padded ``(B, Hp, Wp, C)`` map into groups: ``(B, num_groups, Gh*Gw, C)``.

    Along each axis the map is ``regions x tokens x stride``: a group collects, inside one region,
    the tokens of one phase of the stride (stride 1 = contiguous windows, SDA; stride I = dilated
    sampling, LDA).
    """
    batch, height, width, channels = x.shape
    (gh, sh), (gw, sw) = layout_h, layout_w
    rh, rw = height // (gh * sh), width // (gw * sw)
    x = x.reshape(batch, rh, gh, sh, rw, gw, sw, channels).permute(0, 1, 4, 3, 6, 2, 5, 7)
    return x.reshape(batch, rh * rw * sh * sw, gh * gw, channels)


def merge_groups(x: torch.Tensor, layout_h: AxisLayout, layout_w: AxisLayout, height: int,
                 width: int) -> torch.Tensor:
    """Inverse of :func:`partition_groups` for a padded ``height x width`` map."""
    batch, channels = x.shape[0], x.shape[-1]
    (gh, sh), (gw, sw) = layout_h, layout_w
    rh, rw = height // (gh * sh), width // (gw * sw)
    x = x.reshape(batch, rh, rw, sh, sw, gh, gw, channels).permute(0, 1, 5, 3, 2, 6, 4, 7)
    return x.reshape(batch, height, width, channels)


class CrossFormerBlock(nn.Module):
    """``x + DropPath(Attn(LN(x)))``, then ``x + DropPath(MLP(LN(x)))`` on ``(B, H, W, C)``.

    Args:
        dim: Number of channels.
        num_heads: Number of attention heads.
        group_size: SDA group size ``G`` (and LDA group size in ``'regional'`` mode).
        interval: LDA sampling interval ``I``.
        long_distance: True for LDA, False for SDA.
        lda_mode: ``'iclr'`` or ``'regional'`` (see :class:`CrossFormer`).
        mlp_ratio: MLP hidden channels / ``dim``.
        qkv_bias: Learnable bias of the qkv projection.
        drop_path: Stochastic depth rate of this block.
        act_cfg: Activation of the MLP.
    """

    def __init__(self,
                 dim: int,
                 num_heads: int,
                 group_size: int,
                 interval: int,
                 long_distance: bool,
                 lda_mode: str,
                 mlp_ratio: float,
                 qkv_bias: bool,
                 drop_path: float,
                 act_cfg: Dict[str, Any]) -> None:
        super().__init__()
        self.group_size = group_size
        self.interval = interval
        self.long_distance = long_distance
        self.lda_mode = lda_mode
        self.norm1 = nn.LayerNorm(dim)
        self.attn = CrossFormerAttention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = CrossFormerMlp(dim, int(dim * mlp_ratio), act_cfg)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def group_layout(self, height: int, width: int) -> Tuple[AxisLayout, AxisLayout]:
        """``((Gh, stride_h), (Gw, stride_w))`` of the groups for a ``height x width`` map.

        Decided per call from the map size, never stored: on maps whose shorter side is at
        most ``G`` the official codes switch the block to SDA with one group size (ICLR code:
        ``min(H, W)``; main-branch code: ``max(H, W)``) -- and keep that switch for every later
        input, which mmhybrid does not.
        """
        size, interval = self.group_size, self.interval
        if min(height, width) <= size:
            size = min(height, width) if self.lda_mode == 'iclr' else max(height, width)
            return (size, 1), (size, 1)
        if not self.long_distance:
            return (size, 1), (size, 1)
        if self.lda_mode == 'iclr':
            # I x I groups; each holds every I-th token of the whole (padded) map.
            return ((math.ceil(height / interval), interval),
                    (math.ceil(width / interval), interval))
        # G x G groups of stride I inside each (G*I) x (G*I) region.
        return (size, interval), (size, interval)

    def _attention(self, x: torch.Tensor) -> torch.Tensor:
        _, height, width, _ = x.shape
        layout_h, layout_w = self.group_layout(height, width)
        unit_h, unit_w = layout_h[0] * layout_h[1], layout_w[0] * layout_w[1]
        pad_h = (unit_h - height % unit_h) % unit_h
        pad_w = (unit_w - width % unit_w) % unit_w
        key_padding = None
        if pad_h or pad_w:
            x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
            padded = torch.zeros((1, height + pad_h, width + pad_w, 1), dtype=torch.bool,
                                 device=x.device)
            padded[:, height:] = True
            padded[:, :, width:] = True
            key_padding = partition_groups(padded, layout_h, layout_w)[0, ..., 0]
        groups = partition_groups(x, layout_h, layout_w)
        groups = self.attn(groups, (layout_h[0], layout_w[0]), key_padding)
        x = merge_groups(groups, layout_h, layout_w, height + pad_h, width + pad_w)
        return x[:, :height, :width] if (pad_h or pad_w) else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self._attention(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class CrossScalePatchEmbed(nn.Module):
    """First cross-scale embedding layer: convs of several kernels (same stride), concat, LN.

    Args:
        in_channels: Image channels.
        out_channels: Embedding channels (split over the kernels, larger kernel fewer).
        kernel_sizes: Conv kernels, e.g. ``(4, 8, 16, 32)``.
        stride: Common stride (padding ``(k - stride) / 2``).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_sizes: Sequence[int],
                 stride: int) -> None:
        super().__init__()
        self.projs = nn.ModuleList(
            nn.Conv2d(in_channels, c, k, stride=stride, padding=(k - stride) // 2)
            for k, c in zip(kernel_sizes, cel_channel_splits(out_channels, len(kernel_sizes))))
        self.norm = LayerNorm2d(out_channels, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(torch.cat([proj(x) for proj in self.projs], dim=1))


class CrossScaleMerging(nn.Module):
    """Later cross-scale embedding layers: LN first, then stride-2 convs of several kernels.

    Odd maps are zero-padded bottom/right after the norm (the official code asserts even sizes),
    so that the output is ``ceil(H / 2) x ceil(W / 2)``.

    Args:
        in_channels: Input channels.
        out_channels: Output channels (split over the kernels).
        kernel_sizes: Conv kernels, e.g. ``(2, 4)``.
        stride: Common stride (padding ``(k - stride) / 2``).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_sizes: Sequence[int],
                 stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.norm = LayerNorm2d(in_channels, eps=1e-5)
        self.reductions = nn.ModuleList(
            nn.Conv2d(in_channels, c, k, stride=stride, padding=(k - stride) // 2)
            for k, c in zip(kernel_sizes, cel_channel_splits(out_channels, len(kernel_sizes))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        pad_h, pad_w = (-x.shape[2]) % self.stride, (-x.shape[3]) % self.stride
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        return torch.cat([conv(x) for conv in self.reductions], dim=1)


class CrossFormerStage(nn.Module):
    """A cross-scale embedding layer followed by alternating SDA/LDA blocks (NCHW in and out).

    Args:
        downsample: The stage's embedding (stem or merging).
        blocks: The stage's blocks (working on ``(B, H, W, C)``).
        with_cp: Checkpoint every block.
    """

    def __init__(self, downsample: nn.Module, blocks: List[nn.Module], with_cp: bool) -> None:
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.ModuleList(blocks)
        self.with_cp = with_cp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x).permute(0, 2, 3, 1)
        for block in self.blocks:
            x = maybe_checkpoint(block, x, enabled=self.with_cp)
        return x.permute(0, 3, 1, 2).contiguous()


def _per_stage(name: str, value: Union[int, Sequence[int]]) -> Tuple[int, ...]:
    values = (value, ) * NUM_STAGES if isinstance(value, int) else value
    if not isinstance(values, Sequence) or len(values) != NUM_STAGES or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
        raise ValueError(f'{name} must be a positive int or {NUM_STAGES} positive ints (one '
                         f'per stage), got {value!r}')
    return tuple(values)


@MODELS.register_module()
class CrossFormer(HybridBackbone):
    """CrossFormer: A Versatile Vision Transformer Hinging on Cross-scale Attention (ICLR 2022).

    Cross-scale embedding layers (stem kernels 4/8/16/32, stride 4; merges: LayerNorm, then
    kernels 2/4, stride 2), then blocks alternating short distance attention (even block index:
    ``G x G`` windows) and long distance attention (odd index: tokens sampled with interval
    ``I``), both biased by the dynamic position bias. Any input size runs: attention pads the
    map bottom/right and masks the padded keys as the official code does (additive -1e6), and
    odd maps are padded before each merge (output ``ceil(H / 2)``). Outputs are the raw stage
    outputs (the official dense backbones add no per-output norm).

    Args:
        arch: ``'tiny'``, ``'small'``, ``'base'``, ``'large'`` (aliases ``t``, ``s``, ``b``,
            ``l``), or a dict with ``embed_dims``, ``depths``, ``num_heads`` and optionally
            ``mlp_ratio`` (4), ``patch_sizes`` ((4, 8, 16, 32)), ``merge_sizes`` ((2, 4)),
            ``qkv_bias`` (True).
        out_indices: Stages whose outputs are returned.
        frozen_stages: ``-1`` for none, ``k`` to freeze stages ``0..k``.
        norm_eval: Keep BatchNorms in eval mode while training (CrossFormer has none).
        with_cp: Activation checkpointing (bool or stage indices).
        drop_path_rate: Stochastic depth rate of the last block.
        group_size: SDA group size ``G``: one int for all stages or one per stage (the official
            det/seg configs use 7; some seg configs ``(14, 14, 7, 7)``).
        interval: LDA interval ``I`` per stage (``(8, 4, 2, 1)``; some seg configs
            ``(16, 8, 2, 1)``).
        lda_mode: How LDA groups tokens. ``'iclr'`` (the ICLR'22 code that produced the released
            CrossFormer checkpoints and det/seg numbers): pad to a multiple of ``I``; group
            ``(p, q)`` holds the tokens at ``(a*I + p, b*I + q)``, so there are ``I x I`` groups
            of ``(Hp/I) x (Wp/I)`` tokens (global attention at ``I = 1``). ``'regional'`` (the
            main-branch / CrossFormer++ code): pad to a multiple of ``G*I``; inside each
            ``(G*I) x (G*I)`` region, tokens with stride ``I`` form ``G x G`` groups. Both agree
            at 224x224 classification. On maps with ``min(H, W) <= G`` every block uses SDA
            with one group of size ``min(H, W)`` (``'iclr'``) or ``max(H, W)``
            (``'regional'``), decided per input as the official codes do on their first call.
        act_cfg: Activation of the MLPs.
        out_norm_cfg: Optional new norm on each output (``None``: raw outputs, as official).
        channels_last: Memory layout of the stages (``None``: see ``HybridBackbone``).
        init_cfg: Initialisation config; ``Pretrained`` accepts the official
            ``crossformer-*.pth`` files directly.
    """

    arch_zoo = {
        'tiny': dict(embed_dims=[64, 128, 256, 512], depths=[1, 1, 8, 6],
                     num_heads=[2, 4, 8, 16]),
        'small': dict(embed_dims=[96, 192, 384, 768], depths=[2, 2, 6, 2],
                      num_heads=[3, 6, 12, 24]),
        'base': dict(embed_dims=[96, 192, 384, 768], depths=[2, 2, 18, 2],
                     num_heads=[3, 6, 12, 24]),
        'large': dict(embed_dims=[128, 256, 512, 1024], depths=[2, 2, 18, 2],
                      num_heads=[4, 8, 16, 32]),
    }
    arch_aliases = {'t': 'tiny', 's': 'small', 'b': 'base', 'l': 'large'}
    arch_keys = ('embed_dims', 'depths', 'num_heads')
    arch_defaults = dict(mlp_ratio=4., patch_sizes=(4, 8, 16, 32), merge_sizes=(2, 4),
                         qkv_bias=True)
    family = 'crossformer'

    def __init__(self,
                 arch: Union[str, Dict[str, Any]] = 'small',
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: Union[bool, Sequence[int]] = False,
                 drop_path_rate: float = 0.,
                 group_size: Union[int, Sequence[int]] = 7,
                 interval: Union[int, Sequence[int]] = (8, 4, 2, 1),
                 lda_mode: str = 'iclr',
                 act_cfg: Optional[Dict[str, Any]] = None,
                 out_norm_cfg: Optional[Dict[str, Any]] = None,
                 channels_last: Optional[bool] = None,
                 init_cfg: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(arch=arch, out_indices=out_indices, frozen_stages=frozen_stages,
                         norm_eval=norm_eval, with_cp=with_cp, drop_path_rate=drop_path_rate,
                         out_norm_cfg=out_norm_cfg, channels_last=channels_last,
                         init_cfg=init_cfg)
        if lda_mode not in LDA_MODES:
            raise ValueError(f'lda_mode must be one of {LDA_MODES}, got {lda_mode!r}')
        self.lda_mode = lda_mode
        self.group_size = _per_stage('group_size', group_size)
        self.interval = _per_stage('interval', interval)
        act_cfg = dict(type='GELU') if act_cfg is None else dict(act_cfg)
        settings = self.arch_settings
        dims, depths, heads = settings['embed_dims'], settings['depths'], settings['num_heads']
        dpr = self.drop_path_rates(depths)
        for i in range(NUM_STAGES):
            if i == 0:
                downsample = CrossScalePatchEmbed(self.in_channels, dims[0],
                                                  settings['patch_sizes'], stride=4)
            else:
                downsample = CrossScaleMerging(dims[i - 1], dims[i], settings['merge_sizes'],
                                               stride=2)
            blocks = [
                CrossFormerBlock(dims[i], heads[i], self.group_size[i], self.interval[i],
                                 long_distance=j % 2 == 1, lda_mode=lda_mode,
                                 mlp_ratio=settings['mlp_ratio'], qkv_bias=settings['qkv_bias'],
                                 drop_path=dpr[i][j], act_cfg=act_cfg)
                for j in range(depths[i])
            ]
            self.stages.append(CrossFormerStage(downsample, blocks, self.cp_stages[i]))
        self._init_default_weights()
        self._finish_build(dims)

    @classmethod
    def validate_arch(cls, settings: Dict[str, Any]) -> None:
        # Kernel lists are not per-stage settings: leave them out of the per-stage check.
        super().validate_arch({k: v for k, v in settings.items()
                               if k not in ('patch_sizes', 'merge_sizes')})
        for key, stride in (('patch_sizes', 4), ('merge_sizes', 2)):
            sizes = settings[key]
            if not isinstance(sizes, Sequence) or not sizes or not all(
                    isinstance(k, int) and k >= stride and (k - stride) % 2 == 0 for k in sizes):
                raise ValueError(f'{cls.__name__} arch[{key!r}] must be kernel sizes k >= '
                                 f'{stride} with k - {stride} even, got {sizes!r}')
        dims = settings['embed_dims']
        for i, (dim, heads) in enumerate(zip(dims, settings['num_heads'])):
            if dim % heads:
                raise ValueError(f'{cls.__name__} arch: embed_dims[{i}]={dim} is not divisible '
                                 f'by num_heads[{i}]={heads}')
            num_kernels = len(settings['patch_sizes'] if i == 0 else settings['merge_sizes'])
            if sum(cel_channel_splits(dim, num_kernels)) != dim:
                raise ValueError(f'{cls.__name__} arch: embed_dims[{i}]={dim} cannot be split '
                                 f'over {num_kernels} kernels as C/2, C/4, ... (use a multiple '
                                 f'of {2**(num_kernels - 1)})')

    def _init_default_weights(self) -> None:
        # The official initialisation: Linear weights trunc-normal(0.02) with zero biases,
        # LayerNorms to identity, convs PyTorch's default.
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
