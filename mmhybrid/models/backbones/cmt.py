"""CMT: Convolutional Neural Networks Meet Vision Transformers (Guo et al., CVPR 2022).

Semantics follow the authors' ``huawei-noah/Efficient-AI-Backbones:cmt_pytorch/cmt.py``; the
module layout is mmhybrid's own (``stem``, ``stages.i.{downsample,relative_pos,blocks}``), the
converter in ``mmhybrid.checkpoint.cmt`` maps the released files onto it.

The official model only runs at its pretrain size: each stage holds a dense position bias
``relative_pos`` of shape ``(heads, Hq0*Wq0, Hk0*Wk0)`` fixed by ``img_size``. Here the bias is
stored at that native size and resized at run time to the real query and key grids
(``layers.resize_position_bias``), once per stage and forward, shared by the stage's blocks; a
state dict of another pretrain size is resized on load (:meth:`CMT.adapt_state_dict`).
"""
import math
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath

from mmhybrid.registry import MODELS
from ..layers import (AttentionKernel, LayerNorm2d, Stage, attention_kernel,
                      detached_without_autograd, init_official_weights_, maybe_checkpoint,
                      merge_heads, pad_to_multiple, resize_position_bias)
from ..layers.folding import (ChannelAffine, fold_bns_around_pointwise_, fold_identity_tap_,
                              fold_norms_)
from ..layers.position_bias import Grid
from .base import NUM_STAGES, HybridBackbone


def key_grid(height: int, width: int, sr_ratio: int) -> Grid:
    """Key/value grid of the spatial-reduction attention on an ``height x width`` map.

    ``(H // sr, W // sr)`` per dimension, as the strided reduction conv gives; a side shorter
    than ``sr`` still yields one key (the map is zero-padded to ``sr`` there).
    """
    return max(height // sr_ratio, 1), max(width // sr_ratio, 1)


class CMTStem(nn.Module):
    """Three conv3x3 (bias; the first with stride 2), each followed by act **then** norm.

    Args:
        in_channels: Input channels.
        channels: Channels of the three convs.
        norm_cfg: Norm config.
        act_cfg: Activation config.
    """

    def __init__(self,
                 in_channels: int,
                 channels: int,
                 norm_cfg: Dict[str, Any],
                 act_cfg: Dict[str, Any]) -> None:
        super().__init__()
        for i in range(1, 4):
            setattr(self, f'conv{i}', nn.Conv2d(in_channels if i == 1 else channels, channels,
                                                3, stride=2 if i == 1 else 1, padding=1))
            setattr(self, f'act{i}', build_activation_layer(act_cfg))
            setattr(self, f'norm{i}', build_norm_layer(norm_cfg, channels)[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, 4):
            x = getattr(self, f'conv{i}')(x)
            x = getattr(self, f'norm{i}')(getattr(self, f'act{i}')(x))
        return x

    def switch_to_deploy(self) -> None:
        """Each BatchNorm as its fixed affine map (a GELU stands between it and its conv, and
        the next conv's zero padding after it: neither fold is exact)."""
        for i in range(1, 4):
            setattr(self, f'norm{i}', ChannelAffine.from_batch_norm(getattr(self, f'norm{i}')))


class CMTPatchEmbed(nn.Module):
    """Conv k2 s2 then LayerNorm; odd sides are zero-padded first (ceil mode).

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        eps: LayerNorm epsilon (1e-5, torch's default, as in the official code).
    """

    def __init__(self, in_channels: int, out_channels: int, eps: float) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, out_channels, kernel_size=2, stride=2)
        self.norm = LayerNorm2d(out_channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(pad_to_multiple(x, 2)))


class LightweightMHSA(nn.Module):
    """LMHSA: multi-head attention whose keys/values come from a spatially reduced map.

    ``q = Linear(x)``; when ``sr_ratio > 1`` keys and values are computed from
    ``BN(dw conv k=sr s=sr (x))``; logits ``q k^T (dim/heads)^-0.5 + bias`` through
    ``scaled_dot_product_attention``; then a Linear projection.

    Args:
        dim: Channels.
        num_heads: Number of heads.
        sr_ratio: Spatial reduction of keys/values.
        qkv_bias: Bias in the q, k, v projections.
        norm_cfg: Norm after the reduction conv.
    """

    def __init__(self,
                 dim: int,
                 num_heads: int,
                 sr_ratio: int,
                 qkv_bias: bool,
                 norm_cfg: Dict[str, Any]) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads)**-0.5
        self.sr_ratio = sr_ratio
        # Another attention kernel (attention_kernel's signature, without ``fused``), or None.
        self.kernel: Optional[AttentionKernel] = None
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio, groups=dim)
            self.sr_norm = build_norm_layer(norm_cfg, dim)[1]

    def switch_to_deploy(self) -> None:
        """The reduction's BatchNorm folded into the reduction conv."""
        if self.sr_ratio > 1:
            fold_norms_(self, after=[('sr', 'sr_norm')])

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``x``: normed NCHW map; ``bias``: ``(heads, H*W, Hk*Wk)``. Returns NCHW."""
        b, c, h, w = x.shape
        q, k, v = self.qkv(x)
        mask = detached_without_autograd(bias).to(q.dtype)[None]
        out = (self.kernel or attention_kernel)(q, k, v, mask, self.scale)
        return self.proj(merge_heads(out)).transpose(1, 2).reshape(b, c, h, w)

    def qkv(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries from every position of ``x``, keys and values from its reduced map:
        ``(B, heads, N, d)`` each (one global group)."""
        tokens = x.flatten(2).transpose(1, 2)
        kv = self.reduce(x).flatten(2).transpose(1, 2) if self.sr_ratio > 1 else tokens
        q = self.q(tokens).unflatten(-1, (self.num_heads, -1)).transpose(1, 2)
        k = self.k(kv).unflatten(-1, (self.num_heads, -1)).transpose(1, 2)
        return q, k, self.v(kv).unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

    def reduce(self, x: torch.Tensor) -> torch.Tensor:
        """The reduced map keys and values come from: ``BN(dw conv k=sr s=sr (x))``; a side
        shorter than the reduction is zero-padded up to it (one key along that side)."""
        pad_h, pad_w = max(self.sr_ratio - x.shape[2], 0), max(self.sr_ratio - x.shape[3], 0)
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        return self.sr_norm(self.sr(x))


class IRFFN(nn.Module):
    """Inverted residual FFN of CMT.

    ``1x1 → act → BN``; ``x = dw3x3(x) + x → act → BN``; ``1x1 → BN`` (every conv with bias).

    Args:
        dim: Input and output channels.
        hidden_dim: Hidden channels.
        norm_cfg: Norm config.
        act_cfg: Activation config.
    """

    def __init__(self,
                 dim: int,
                 hidden_dim: int,
                 norm_cfg: Dict[str, Any],
                 act_cfg: Dict[str, Any]) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden_dim, 1)
        self.act1 = build_activation_layer(act_cfg)
        self.norm1 = build_norm_layer(norm_cfg, hidden_dim)[1]
        self.dwconv = nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1, groups=hidden_dim)
        self.act2 = build_activation_layer(act_cfg)
        self.norm2 = build_norm_layer(norm_cfg, hidden_dim)[1]
        self.fc2 = nn.Conv2d(hidden_dim, dim, 1)
        self.norm3 = build_norm_layer(norm_cfg, dim)[1]
        # Whether the residual around ``dwconv`` is its centre tap (switch_to_deploy).
        self.dw_residual_folded = False

    def switch_to_deploy(self) -> None:
        """norm1 as its affine map, the residual as the depth-wise conv's centre tap, norm2 and
        norm3 folded into fc2 (exact: fc2 is 1x1 without padding)."""
        self.norm1 = ChannelAffine.from_batch_norm(self.norm1)
        fold_identity_tap_(self.dwconv)
        self.dw_residual_folded = True
        if fold_bns_around_pointwise_(self.norm2, self.fc2, self.norm3):
            self.norm2, self.norm3 = nn.Identity(), nn.Identity()
        else:
            self.norm2 = ChannelAffine.from_batch_norm(self.norm2)
            self.norm3 = ChannelAffine.from_batch_norm(self.norm3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(self.act1(self.fc1(x)))
        x = self.dwconv(x) if self.dw_residual_folded else x + self.dwconv(x)
        x = self.norm2(self.act2(x))
        return self.norm3(self.fc2(x))


class CMTBlock(nn.Module):
    """LPU ``x + dw3x3(x)``; ``x + DropPath(LMHSA(LN(x)))``; ``x + DropPath(IRFFN(LN(x)))``.

    Args:
        dim: Channels.
        num_heads: Attention heads.
        mlp_ratio: IRFFN hidden channels / ``dim`` (truncated to int).
        sr_ratio: Spatial reduction of keys/values.
        qkv_bias: Bias in the q, k, v projections.
        drop_path: Stochastic depth rate of this block.
        block_norm_eps: Epsilon of the two block LayerNorms.
        norm_cfg: Norm of the attention reduction and the IRFFN.
        act_cfg: Activation of the IRFFN.
    """

    def __init__(self,
                 dim: int,
                 num_heads: int,
                 mlp_ratio: float,
                 sr_ratio: int,
                 qkv_bias: bool,
                 drop_path: float,
                 block_norm_eps: float,
                 norm_cfg: Dict[str, Any],
                 act_cfg: Dict[str, Any]) -> None:
        super().__init__()
        self.lpu = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = LayerNorm2d(dim, eps=block_norm_eps)
        self.attn = LightweightMHSA(dim, num_heads, sr_ratio, qkv_bias, norm_cfg)
        self.norm2 = LayerNorm2d(dim, eps=block_norm_eps)
        self.ffn = IRFFN(dim, int(dim * mlp_ratio), norm_cfg, act_cfg)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        # Whether the LPU's residual is its centre tap (switch_to_deploy).
        self.lpu_residual_folded = False

    def switch_to_deploy(self) -> None:
        """The LPU's residual as its conv's centre tap."""
        fold_identity_tap_(self.lpu)
        self.lpu_residual_folded = True

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = self.lpu(x) if self.lpu_residual_folded else x + self.lpu(x)
        x = x + self.drop_path(self.attn(self.norm1(x), bias))
        return x + self.drop_path(self.ffn(self.norm2(x)))


class CMTStage(Stage):
    """Patch embedding and blocks sharing one position bias ``relative_pos``.

    The bias is stored at the pretrain grids and resized once per forward to the actual grids;
    the resized bias lives only while the stage runs. (It is not kept across forwards: at
    800x1344 the four stages' biases take 530 MB, more than the rest of an inference's peak,
    and detection inputs change size from image to image anyway.)

    Args:
        downsample: The stage's patch embedding.
        blocks: The stage's blocks.
        num_heads: Attention heads.
        sr_ratio: Spatial reduction of keys/values.
        query_grid: Query grid ``(Hq0, Wq0)`` at the pretrain size.
        with_cp: Checkpoint every block.
    """

    def __init__(self,
                 downsample: nn.Module,
                 blocks: List[nn.Module],
                 num_heads: int,
                 sr_ratio: int,
                 query_grid: Grid,
                 with_cp: bool) -> None:
        super().__init__(downsample, blocks, with_cp)
        self.sr_ratio = sr_ratio
        self.query_grid = tuple(query_grid)
        self.key_grid = key_grid(*query_grid, sr_ratio)
        self.relative_pos = nn.Parameter(
            torch.randn(num_heads, math.prod(self.query_grid), math.prod(self.key_grid)))

    def position_bias(self, query_grid: Grid) -> torch.Tensor:
        """The bias ``(heads, Hq*Wq, Hk*Wk)`` for an actual query grid."""
        return resize_position_bias(self.relative_pos, self.query_grid, self.key_grid,
                                    query_grid, key_grid(*query_grid, self.sr_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        bias = self.position_bias((x.shape[2], x.shape[3]))
        # The blocks' loop inline (not ``run_blocks(x, bias)``): rebinding ``x`` here frees
        # the patch embedding's map after the first block.
        for block in self.blocks:
            x = maybe_checkpoint(block, x, bias, enabled=self.with_cp)
        return x


@MODELS.register_module()
class CMT(HybridBackbone):
    """CMT: Convolutional Neural Networks Meet Vision Transformers (Guo et al., 2022).

    A conv stem (stride 2), then four stages of patch embedding (conv k2 s2 + LayerNorm) and
    CMT blocks (LPU, lightweight MHSA with spatial reduction and a dense position bias, IRFFN).
    Any input size runs: odd maps are zero-padded before each patch embedding (ceil sizes),
    the key grid is ``(H // sr, W // sr)`` with at least one key per side, and each stage's
    ``relative_pos`` (stored at the pretrain size ``img_size``) is resized bicubically to the
    actual query and key grids. Stage outputs are the raw outputs of each stage's last block.

    Args:
        arch: ``'tiny'``, ``'xsmall'``, ``'small'``, ``'base'`` (aliases ``ti``, ``xs``,
            ``s``, ``b``), or a dict with ``embed_dims``, ``depths``, ``mlp_ratios``,
            ``stem_channels`` and optionally ``num_heads`` (1, 2, 4, 8), ``sr_ratios``
            (8, 4, 2, 1), ``img_size`` (224; the pretrain size fixing the stored bias shapes,
            a multiple of 32) and ``qkv_bias`` (True).
        patch_norm_eps: Epsilon of the patch-embedding LayerNorms.
        block_norm_eps: Epsilon of the block LayerNorms.
        norm_cfg: Norm of the stem, the attention reduction and the IRFFN.
        act_cfg: Activation of the stem and the IRFFN.
        **kwargs: The contract arguments of :class:`HybridBackbone`: ``out_indices``,
            ``frozen_stages``, ``norm_eval``, ``with_cp``, ``drop_path_rate``, ``out_norm_cfg``,
            ``channels_last`` and ``init_cfg`` (``Pretrained`` accepts the official ``cmt_*.pth``
            files (a bias of another pretrain size is resized on load)).
    """

    arch_zoo = {
        'tiny': dict(embed_dims=[46, 92, 184, 368], depths=[2, 2, 10, 2],
                     mlp_ratios=[3.6] * 4, stem_channels=16, img_size=160),
        'xsmall': dict(embed_dims=[52, 104, 208, 416], depths=[3, 3, 12, 3],
                       mlp_ratios=[3.77] * 4, stem_channels=16, img_size=192),
        'small': dict(embed_dims=[64, 128, 256, 512], depths=[3, 3, 16, 3],
                      mlp_ratios=[4.] * 4, stem_channels=32, img_size=224),
        'base': dict(embed_dims=[76, 152, 304, 608], depths=[4, 4, 20, 4],
                     mlp_ratios=[4.] * 4, stem_channels=38, img_size=256),
    }
    arch_aliases = {'ti': 'tiny', 'xs': 'xsmall', 's': 'small', 'b': 'base'}
    arch_keys = ('embed_dims', 'depths', 'mlp_ratios', 'stem_channels')
    arch_defaults = dict(num_heads=[1, 2, 4, 8], sr_ratios=[8, 4, 2, 1], img_size=224,
                         qkv_bias=True)
    family = 'cmt'
    # Depthwise and 1x1 convolutions dominate: channels-last is faster on the CPU.
    default_channels_last = True

    def __init__(self,
                 arch: Union[str, Dict[str, Any]] = 'small',
                 patch_norm_eps: float = 1e-5,
                 block_norm_eps: float = 1e-6,
                 norm_cfg: Optional[Dict[str, Any]] = None,
                 act_cfg: Optional[Dict[str, Any]] = None,
                 **kwargs: Any) -> None:
        super().__init__(arch=arch, **kwargs)
        norm_cfg = dict(type='BN') if norm_cfg is None else dict(norm_cfg)
        act_cfg = dict(type='GELU') if act_cfg is None else dict(act_cfg)
        settings = self.arch_settings
        dims, depths = settings['embed_dims'], settings['depths']
        heads, sr_ratios = settings['num_heads'], settings['sr_ratios']
        self.img_size = settings['img_size']
        self.stem = CMTStem(self.in_channels, settings['stem_channels'], norm_cfg, act_cfg)
        dpr = self.drop_path_rates(depths)
        in_channels = settings['stem_channels']
        grid = self.img_size // 2
        for i in range(NUM_STAGES):
            grid //= 2
            blocks = [
                CMTBlock(dims[i], heads[i], settings['mlp_ratios'][i], sr_ratios[i],
                         settings['qkv_bias'], dpr[i][j], block_norm_eps, norm_cfg, act_cfg)
                for j in range(depths[i])
            ]
            self.stages.append(
                CMTStage(CMTPatchEmbed(in_channels, dims[i], patch_norm_eps), blocks, heads[i],
                         sr_ratios[i], (grid, grid), self.cp_stages[i]))
            in_channels = dims[i]
        # The official initialisation (position biases keep their N(0, 1)).
        init_official_weights_(self, conv='fan_out')
        self._finish_build(dims)

    @classmethod
    def validate_arch(cls, settings: Dict[str, Any]) -> None:
        super().validate_arch(settings)
        img_size = settings['img_size']
        if isinstance(img_size, bool) or not isinstance(img_size, int) or img_size <= 0 \
                or img_size % 32:
            raise ValueError(f'CMT arch img_size (the pretrain size) must be a positive '
                             f'multiple of 32, got {img_size!r}')
        for dim, heads in zip(settings['embed_dims'], settings['num_heads']):
            if heads <= 0 or dim % heads:
                raise ValueError(f'CMT arch embed_dims {settings["embed_dims"]} must be '
                                 f'divisible by num_heads {settings["num_heads"]}')
        if any(isinstance(r, bool) or not isinstance(r, int) or r < 1
               for r in settings['sr_ratios']):
            raise ValueError(f'CMT arch sr_ratios must be positive ints, got '
                             f'{settings["sr_ratios"]}')

    def adapt_state_dict(self, state_dict: Dict[str, torch.Tensor]) -> List[str]:
        """Resizes ``stages.i.relative_pos`` of another pretrain size to this model's.

        Official pretrain sizes are square, so the source grids are the square roots of the
        stored query and key counts. A bias with another head count or non-square grids is
        left alone (the load then reports the shape mismatch).
        """
        resized = []
        for i, stage in enumerate(self.stages):
            key = f'stages.{i}.relative_pos'
            value = state_dict.get(key)
            target = stage.relative_pos
            if value is None or value.dim() != 3 or value.shape == target.shape \
                    or value.shape[0] != target.shape[0]:
                continue
            hq, hk = math.isqrt(value.shape[1]), math.isqrt(value.shape[2])
            if hq * hq != value.shape[1] or hk * hk != value.shape[2]:
                continue
            state_dict[key] = resize_position_bias(value, (hq, hq), (hk, hk), stage.query_grid,
                                                   stage.key_grid).to(value.dtype)
            resized.append(key)
        return resized
