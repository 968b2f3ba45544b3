"""CrossFormer (Wang et al., ICLR 2022, arXiv 2108.00154) and CrossFormer++ (TPAMI 2023, arXiv
2303.06908), for dense prediction.

Semantics follow the authors' code (``cheerss/CrossFormer``): the cross-scale embedding layers
(CEL), short/long distance attention (SDA/LDA) with the dynamic position bias (DPB), both
official LDA groupings (``lda_mode``) and CrossFormer++'s activation cooling layers (ACL) and
per-stage ("progressive") group sizes. The module layout is mmhybrid's own
(``stages.i.{downsample,blocks}``); ``mmhybrid.checkpoint.crossformer`` maps the released
ImageNet files onto it.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn.bricks import DropPath

from mmhybrid.registry import MODELS
from ..layers import (AxisLayout, LayerNorm2d, Mlp, Stage, TokenAttention, apply_in_groups,
                      ceil_div, group_shape, init_official_weights_, pad_to_multiple,
                      window_layout)
from ..loading import CheckpointMismatchError
from .base import NUM_STAGES, HybridBackbone

LDA_MODES = ('iclr', 'regional')


def cel_channel_splits(channels: int, num_kernels: int) -> List[int]:
    """Channels of each conv of a cross-scale embedding layer (larger kernel, fewer channels).

    ``C/2, C/4, ...`` with the last kernel getting the same share as the one before it, e.g.
    ``C/2, C/4, C/8, C/8`` for four kernels and ``C/2, C/2`` for two.
    """
    if num_kernels == 1:
        return [channels]
    splits = [channels // 2**(i + 1) for i in range(num_kernels - 1)]
    return splits + [splits[-1]]


def cel_convs(in_channels: int, out_channels: int, kernel_sizes: Sequence[int],
              stride: int) -> nn.ModuleList:
    """The convolutions of a cross-scale embedding layer: one per kernel, same stride, padding
    ``(k - stride) / 2``, output channels split by :func:`cel_channel_splits`."""
    return nn.ModuleList(
        nn.Conv2d(in_channels, c, k, stride=stride, padding=(k - stride) // 2)
        for k, c in zip(kernel_sizes, cel_channel_splits(out_channels, len(kernel_sizes))))


def cel_forward(convs: Sequence[nn.Conv2d], x: torch.Tensor) -> torch.Tensor:
    """The concatenated outputs of a cross-scale embedding layer's ``convs`` on ``x``."""
    return torch.cat([conv(x) for conv in convs], dim=1)


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
        self.pos3 = nn.Sequential(nn.LayerNorm(pos_dim), nn.ReLU(),
                                  nn.Linear(pos_dim, num_heads))

    def forward(self, group_h: int, group_w: int) -> torch.Tensor:
        """Returns the ``(heads, N, N)`` bias of a ``group_h x group_w`` group (``N = Gh*Gw``)."""
        weight = self.pos_proj.weight
        dy = torch.arange(1 - group_h, group_h, device=weight.device)
        dx = torch.arange(1 - group_w, group_w, device=weight.device)
        offsets = torch.cartesian_prod(dy, dx)  # every (dy, dx) in the group, row-major
        table = self.pos3(self.pos2(self.pos1(self.pos_proj(offsets.to(weight.dtype)))))
        # A token's place in the table's rows: y * (2 * Gw - 1) + x; the offset (0, 0) is the
        # middle row, so token i sees token j through row pos[i] - pos[j] + middle.
        ys = torch.arange(group_h, device=weight.device) * (2 * group_w - 1)
        pos = (ys[:, None] + torch.arange(group_w, device=weight.device)).flatten()
        index = pos[:, None] - pos + offsets.shape[0] // 2
        return table.t()[:, index]  # (heads, N, N), laid out contiguously


class CrossFormerAttention(TokenAttention):
    """Multi-head self-attention inside groups, biased by the DPB (:class:`TokenAttention`).

    Args:
        dim: Number of channels.
        num_heads: Number of heads.
        qkv_bias: Learnable bias of the qkv projection.
        fused: SDPA (True) or the explicit formula (False: faster on the CPU for groups of
            few tokens, such as 7x7 windows).
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool, fused: bool = True) -> None:
        super().__init__(dim, num_heads, qkv_bias, fused)
        # The official code builds the DPB with `dim // 4`, which it divides by 4 again.
        self.pos = DynamicPositionBias(num_heads, (dim // 4) // 4)

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
        return super().forward(x, self.pos(*group_shape), key_padding)


class ActivationCooling(nn.Module):
    """CrossFormer++'s activation cooling layer (ACL): ``LN(DWConv3x3(x))`` on ``(B, H, W, C)``.

    It replaces the block's output (no residual): the official ``CrossFormerBlock`` with
    ``use_extra_conv`` ends with ``x = ex_ln(ex_conv(x))``, a depthwise 3x3 convolution (with
    bias, zero padding 1) followed by a LayerNorm over channels, which keeps the magnitude of
    the residual stream from growing with depth.

    Args:
        dim: Number of channels.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return self.norm(x)


def has_cooling(index: int, depth: int) -> bool:
    """Whether block ``index`` of a stage of ``depth`` blocks ends with an ACL: every third
    block (indices 2, 5, 8, ...) except the stage's last, as the official ``Stage`` builds it."""
    return (index + 1) % 3 == 0 and index < depth - 1


class CrossFormerBlock(nn.Module):
    """``x + DropPath(Attn(LN(x)))``, then ``x + DropPath(MLP(LN(x)))`` on ``(B, H, W, C)``,
    then (CrossFormer++, ``cooling=True``) :class:`ActivationCooling`.

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
        cooling: End with an activation cooling layer (CrossFormer++).
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
                 act_cfg: Dict[str, Any],
                 cooling: bool = False) -> None:
        super().__init__()
        self.group_size = group_size
        self.interval = interval
        self.long_distance = long_distance
        self.lda_mode = lda_mode
        self.norm1 = nn.LayerNorm(dim)
        # Groups of a fixed G x G size (SDA, regional LDA) attend through the explicit formula,
        # the ICLR'22 LDA's groups (a whole map's share of tokens) through SDPA.
        self.attn = CrossFormerAttention(dim, num_heads, qkv_bias,
                                         fused=long_distance and lda_mode == 'iclr')
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_cfg)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.cooling = ActivationCooling(dim) if cooling else None

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
            return window_layout(size)
        if not self.long_distance:
            return window_layout(size)
        if self.lda_mode == 'iclr':
            # I x I groups; each holds every I-th token of the whole (padded) map.
            return (None, interval), (None, interval)
        # G x G groups of stride I inside each (G*I) x (G*I) region.
        return (size, interval), (size, interval)

    def _attention(self, x: torch.Tensor) -> torch.Tensor:
        size = (x.shape[1], x.shape[2])
        layout_h, layout_w = self.group_layout(*size)
        shape = group_shape(layout_h, layout_w, size)
        return apply_in_groups(x, layout_h, layout_w, lambda g, pad: self.attn(g, shape, pad))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self._attention(self.norm1(x)))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x if self.cooling is None else self.cooling(x)


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
        self.projs = cel_convs(in_channels, out_channels, kernel_sizes, stride)
        self.norm = LayerNorm2d(out_channels, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(cel_forward(self.projs, x))


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
        self.reductions = cel_convs(in_channels, out_channels, kernel_sizes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_to_multiple(self.norm(x), self.stride)
        return cel_forward(self.reductions, x)


class CrossFormerStage(Stage):
    """A cross-scale embedding layer, then SDA/LDA blocks on ``(B, H, W, C)`` tokens; NCHW in
    and out.

    The output is the NCHW view of the blocks' channels-last tokens, not a contiguous copy:
    the next stage's LayerNorm and convolutions read it as it is (a copy to NCHW would be
    permuted back twice), and the backbone's forward makes the maps it returns contiguous.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.run_blocks(self.downsample(x).permute(0, 2, 3, 1))
        return x.permute(0, 3, 1, 2)


def _per_stage(name: str, value: Union[int, Sequence[int]]) -> Tuple[int, ...]:
    values = (value, ) * NUM_STAGES if isinstance(value, int) else value
    if not isinstance(values, Sequence) or len(values) != NUM_STAGES or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
        raise ValueError(f'{name} must be a positive int or {NUM_STAGES} positive ints (one '
                         f'per stage), got {value!r}')
    return tuple(values)


# Group sizes, intervals and LDA grouping a variant uses when the config does not say: those of
# its ImageNet training (CrossFormer: ``configs/crossformer/*.yaml`` of the ICLR'22 code;
# CrossFormer++: ``configs/crossformer_pp/*.yaml`` of the main branch).
CROSSFORMER_ATTENTION = dict(group_size=7, interval=(8, 4, 2, 1), lda_mode='iclr')
CROSSFORMERPP_ATTENTION = dict(group_size=(4, 4, 14, 7), interval=(4, 2, 1, 1),
                               lda_mode='regional')


@MODELS.register_module()
class CrossFormer(HybridBackbone):
    """CrossFormer: A Versatile Vision Transformer Hinging on Cross-scale Attention (ICLR 2022),
    and CrossFormer++ (TPAMI 2023).

    Cross-scale embedding layers (stem kernels 4/8/16/32, stride 4; merges: LayerNorm, then
    kernels 2/4, stride 2), then blocks alternating short distance attention (even block index:
    ``G x G`` windows) and long distance attention (odd index: tokens sampled with interval
    ``I``), both biased by the dynamic position bias. Any input size runs: attention pads the
    map bottom/right and masks the padded keys as the official code does (additive -1e6), and
    odd maps are padded before each merge (output ``ceil(H / 2)``). Outputs are the raw stage
    outputs (the official dense backbones add no per-output norm).

    CrossFormer++ (``arch='pp-small'``, ``'pp-base'``, ``'pp-large'``, ``'pp-huge'``) is the same
    network with an activation cooling layer (:class:`ActivationCooling`, ``arch['acl']``) ending
    every third block of a stage but the last, group sizes that grow per stage (``(4, 4, 14, 7)``
    with intervals ``(4, 2, 1, 1)`` on ImageNet) and the main-branch (``'regional'``) LDA.

    Args:
        arch: ``'tiny'``, ``'small'``, ``'base'``, ``'large'`` (aliases ``t``, ``s``, ``b``,
            ``l``), CrossFormer++ ``'pp-small'``, ``'pp-base'``, ``'pp-large'``, ``'pp-huge'``
            (aliases ``pp-s``, ... and ``crossformerpp-s``, ...), or a dict with
            ``embed_dims``, ``depths``, ``num_heads`` and optionally ``mlp_ratio`` (4),
            ``patch_sizes`` ((4, 8, 16, 32)), ``merge_sizes`` ((2, 4)), ``qkv_bias`` (True),
            ``acl`` (False; True for CrossFormer++).
        group_size: SDA group size ``G``: one int for all stages or one per stage. ``None``: the
            variant's ImageNet setting, 7 (CrossFormer) or ``(4, 4, 14, 7)`` (CrossFormer++). The
            official det/seg configs of both use 7; some CrossFormer seg configs
            ``(14, 14, 7, 7)``.
        interval: LDA interval ``I`` per stage. ``None``: ``(8, 4, 2, 1)`` (CrossFormer, and
            every official det/seg config) or ``(4, 2, 1, 1)`` (CrossFormer++ on ImageNet); some
            CrossFormer seg configs ``(16, 8, 2, 1)``.
        lda_mode: How LDA groups tokens. ``None``: ``'iclr'`` for CrossFormer, ``'regional'``
            for CrossFormer++ (``arch['acl']``), the codes that trained each. ``'iclr'`` (the
            ICLR'22 code that produced the released CrossFormer checkpoints and det/seg numbers):
            pad to a multiple of ``I``; group ``(p, q)`` holds the tokens at
            ``(a*I + p, b*I + q)``, so there are ``I x I`` groups of ``(Hp/I) x (Wp/I)`` tokens
            (global attention at ``I = 1``). ``'regional'`` (the main-branch / CrossFormer++
            code): pad to a multiple of ``G*I``; inside each ``(G*I) x (G*I)`` region, tokens
            with stride ``I`` form ``G x G`` groups. Both agree at 224x224 classification. On
            maps with ``min(H, W) <= G`` every block uses SDA with one group of size
            ``min(H, W)`` (``'iclr'``) or ``max(H, W)`` (``'regional'``), decided per input as
            the official codes do on their first call.
        act_cfg: Activation of the MLPs.
        **kwargs: The contract arguments of :class:`HybridBackbone`: ``out_indices``,
            ``frozen_stages``, ``norm_eval``, ``with_cp``, ``drop_path_rate``, ``out_norm_cfg``,
            ``channels_last`` and ``init_cfg`` (``Pretrained`` accepts the official
            ``crossformer-*.pth`` and CrossFormer++ files directly).
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
        # CrossFormer++ (main branch, configs/crossformer_pp/*_patch4_group_const_224.yaml).
        'pp-small': dict(embed_dims=[64, 128, 256, 512], depths=[2, 2, 18, 2],
                         num_heads=[2, 4, 8, 16], acl=True),
        'pp-base': dict(embed_dims=[96, 192, 384, 768], depths=[2, 2, 18, 2],
                        num_heads=[3, 6, 12, 24], acl=True),
        'pp-large': dict(embed_dims=[128, 256, 512, 1024], depths=[2, 2, 18, 2],
                         num_heads=[4, 8, 16, 32], acl=True),
        'pp-huge': dict(embed_dims=[128, 256, 512, 1024], depths=[6, 6, 18, 2],
                        num_heads=[4, 8, 16, 32], acl=True),
    }
    arch_aliases = {
        't': 'tiny', 's': 'small', 'b': 'base', 'l': 'large',
        **{f'{prefix}{short}': f'pp-{name}'
           for prefix in ('pp-', 'crossformerpp-')
           for short, name in (('s', 'small'), ('b', 'base'), ('l', 'large'), ('h', 'huge'))},
    }
    arch_keys = ('embed_dims', 'depths', 'num_heads')
    arch_defaults = dict(mlp_ratio=4., patch_sizes=(4, 8, 16, 32), merge_sizes=(2, 4),
                         qkv_bias=True, acl=False)
    family = 'crossformer'

    def __init__(self,
                 arch: Union[str, Dict[str, Any]] = 'small',
                 group_size: Optional[Union[int, Sequence[int]]] = None,
                 interval: Optional[Union[int, Sequence[int]]] = None,
                 lda_mode: Optional[str] = None,
                 act_cfg: Optional[Dict[str, Any]] = None,
                 **kwargs: Any) -> None:
        super().__init__(arch=arch, **kwargs)
        settings = self.arch_settings
        defaults = CROSSFORMERPP_ATTENTION if settings['acl'] else CROSSFORMER_ATTENTION
        group_size = defaults['group_size'] if group_size is None else group_size
        interval = defaults['interval'] if interval is None else interval
        lda_mode = defaults['lda_mode'] if lda_mode is None else lda_mode
        if lda_mode not in LDA_MODES:
            raise ValueError(f'lda_mode must be one of {LDA_MODES}, got {lda_mode!r}')
        self.lda_mode = lda_mode
        self.group_size = _per_stage('group_size', group_size)
        self.interval = _per_stage('interval', interval)
        act_cfg = dict(type='GELU') if act_cfg is None else dict(act_cfg)
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
                                 drop_path=dpr[i][j], act_cfg=act_cfg,
                                 cooling=settings['acl'] and has_cooling(j, depths[i]))
                for j in range(depths[i])
            ]
            self.stages.append(CrossFormerStage(downsample, blocks, self.cp_stages[i]))
        # The official initialisation; convolutions keep PyTorch's default.
        init_official_weights_(self, layer_norm=True)
        self._finish_build(dims)

    def adapt_state_dict(self, state_dict: Dict[str, torch.Tensor]) -> List[str]:
        """Refuses, by name, CrossFormer++ weights for a CrossFormer arch and the reverse: the
        two differ by the activation cooling layers (``blocks.j.cooling.*``); changes nothing.
        """
        def has_acl(keys):
            return any('.cooling.' in k for k in keys)

        theirs, ours = has_acl(state_dict), has_acl(self.state_dict(keep_vars=True))
        if theirs != ours:
            names = ('a CrossFormer++ checkpoint (it has activation cooling layers, '
                     'blocks.*.cooling / ex_conv, ex_ln)', 'a CrossFormer checkpoint (no '
                     'activation cooling layers)')
            fix = ("arch='pp-small', 'pp-base', 'pp-large' or 'pp-huge' (or arch['acl']=True)"
                   if theirs else "arch='tiny', 'small', 'base' or 'large' (or arch['acl']=False)")
            raise CheckpointMismatchError(
                f'{names[0] if theirs else names[1]} does not fit {type(self).__name__}'
                f'(arch={self.arch_name!r}), which {"has no" if theirs else "has"} activation '
                f'cooling layers: use {fix}')
        return []

    @classmethod
    def validate_arch(cls, settings: Dict[str, Any]) -> None:
        # Kernel lists are not per-stage settings: leave them out of the per-stage check.
        super().validate_arch({k: v for k, v in settings.items()
                               if k not in ('patch_sizes', 'merge_sizes')})
        if not isinstance(settings['acl'], bool):
            raise ValueError(f'{cls.__name__} arch[\'acl\'] (activation cooling layers, '
                             f'CrossFormer++) must be True or False, got {settings["acl"]!r}')
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

    @property
    def min_export_size(self) -> int:
        """The smallest input side an exported (traced) graph serves: every stage's map
        (``floor(H / 4)``, then halved with ceiling) must stay larger than its group size, as
        smaller maps switch the blocks to one group."""
        size = 32
        while not all(ceil_div(size // 4, 2**i) > g for i, g in enumerate(self.group_size)):
            size += 1
        return size
