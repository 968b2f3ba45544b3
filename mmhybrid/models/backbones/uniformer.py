"""UniFormer (Li et al., ICLR 2022, arXiv 2201.04676; image models: arXiv 2201.09450), dense.

Semantics follow the authors' ``Sense-X/UniFormer`` code: the classification model
(``image_classification/models/uniformer.py``: patch and conv stems, layer scale) and the
detection/segmentation backbone (``object_detection/mmdet/models/backbones/uniformer.py``:
window / hybrid attention in stage 3, per-output LayerNorms). The module layout is mmhybrid's own
(``stages.i.{downsample,blocks}``, ``out_norms``); ``mmhybrid.checkpoint.uniformer`` maps the
released files onto it.
"""
from types import MappingProxyType
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath

from mmhybrid.registry import MODELS
from ..layers import (LayerNorm2d, Mlp, Stage, TokenAttention, apply_in_groups,
                      init_official_weights_, window_layout)
from ..layers.folding import fold_identity_tap_, fold_layer_scale_, fold_norms_
from .base import NUM_STAGES, HybridBackbone

ATTENTION_MODES = ('global', 'window', 'hybrid')
# The official dense code's per-output LayerNorm (read-only: a shared default).
DEFAULT_OUT_NORM = MappingProxyType(dict(type='LN', eps=1e-6))


class UniFormerPatchEmbed(nn.Module):
    """Downsampling: conv ``k = s, stride s`` + LayerNorm (patch stem) or conv3x3 s2 + BN.

    The conv stem's first stage is two convs: ``conv3x3 s2 → BN → act → conv3x3 s2 → BN``.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        stride: Downsampling factor (4 for the first stage, 2 after).
        conv_stem: Use the conv stem layout instead of a patch convolution.
        norm_cfg: Norm of the conv stem (BN officially).
        act_cfg: Activation inside the two-conv first stage of the conv stem.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int,
                 conv_stem: bool,
                 norm_cfg: Dict[str, Any],
                 act_cfg: Dict[str, Any]) -> None:
        super().__init__()
        if not conv_stem:
            self.proj = nn.Conv2d(in_channels, out_channels, stride, stride=stride)
            # The patch embeddings' LayerNorm keeps torch's default eps (1e-5).
            self.norm = LayerNorm2d(out_channels, eps=1e-5)
        elif stride == 4:
            hidden = out_channels // 2
            self.proj = nn.Sequential(
                nn.Conv2d(in_channels, hidden, 3, stride=2, padding=1),
                build_norm_layer(norm_cfg, hidden)[1], build_activation_layer(act_cfg),
                nn.Conv2d(hidden, out_channels, 3, stride=2, padding=1),
                build_norm_layer(norm_cfg, out_channels)[1])
            self.norm = nn.Identity()
        else:
            self.proj = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1),
                build_norm_layer(norm_cfg, out_channels)[1])
            self.norm = nn.Identity()

    def switch_to_deploy(self) -> None:
        """The conv stem's BatchNorms folded into the convs before them."""
        if isinstance(self.proj, nn.Sequential):
            fold_norms_(self.proj, after=[('0', '1'), ('3', '4')][:len(self.proj) // 2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))


class UniFormerConvBlock(nn.Module):
    """CBlock (local MHRA): DPE, ``1x1(dw5x5(1x1(BN(x))))`` and a conv MLP, all residual.

    Args:
        dim: Channels.
        mlp_ratio: MLP hidden channels / ``dim``.
        drop_path: Stochastic depth rate.
        norm_cfg: The two block norms (BN officially).
        act_cfg: Activation of the MLP.
    """

    def __init__(self,
                 dim: int,
                 mlp_ratio: float,
                 drop_path: float,
                 norm_cfg: Dict[str, Any],
                 act_cfg: Dict[str, Any]) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = build_norm_layer(norm_cfg, dim)[1]
        self.conv1 = nn.Conv2d(dim, dim, 1)
        self.attn = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.conv2 = nn.Conv2d(dim, dim, 1)
        self.norm2 = build_norm_layer(norm_cfg, dim)[1]
        self.mlp = nn.Sequential()
        self.mlp.add_module('fc1', nn.Conv2d(dim, hidden, 1))
        self.mlp.add_module('act', build_activation_layer(act_cfg))
        self.mlp.add_module('fc2', nn.Conv2d(hidden, dim, 1))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        # Whether the DPE's residual is its conv's centre tap (switch_to_deploy).
        self.pos_residual_folded = False

    def switch_to_deploy(self) -> None:
        """The DPE residual as its conv's centre tap; ``norm1`` into ``conv1``, ``norm2`` into
        the MLP's ``fc1`` (1x1 convs fed by the norm alone)."""
        fold_identity_tap_(self.pos_embed)
        self.pos_residual_folded = True
        fold_norms_(self, before=[('norm1', 'conv1'), ('norm2', 'mlp.fc1')])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pos_embed(x) if self.pos_residual_folded else x + self.pos_embed(x)
        x = x + self.drop_path(self.conv2(self.attn(self.conv1(self.norm1(x)))))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class UniFormerSABlock(nn.Module):
    """SABlock (global MHRA), optionally inside non-overlapping windows.

    ``x + DPE(x)``; then ``x + DropPath(γ1·MHSA(LN(x)))`` and ``x + DropPath(γ2·MLP(LN(x)))``
    on tokens. With ``window_size`` the normed map is zero-padded bottom/right to a multiple of the
    window, attention runs per window with no mask (padded tokens take part as keys, as in the
    official detection code), and the padding is cropped.

    Args:
        dim: Channels.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden channels / ``dim``.
        qkv_bias: Bias of the qkv projection.
        drop_path: Stochastic depth rate.
        window_size: Window side, or ``None`` for global attention.
        layer_scale_init: Initial value of the layer scales γ1, γ2, or ``None`` for none.
        act_cfg: Activation of the MLP.
    """

    def __init__(self,
                 dim: int,
                 num_heads: int,
                 mlp_ratio: float,
                 qkv_bias: bool,
                 drop_path: float,
                 window_size: Optional[int],
                 layer_scale_init: Optional[float],
                 act_cfg: Dict[str, Any]) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.window_size = window_size
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = TokenAttention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden, act_cfg)
        if layer_scale_init is not None:
            self.gamma_1 = nn.Parameter(torch.full((dim, ), float(layer_scale_init)))
            self.gamma_2 = nn.Parameter(torch.full((dim, ), float(layer_scale_init)))
        else:
            self.gamma_1 = self.gamma_2 = None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        # Whether the DPE's residual is its conv's centre tap (switch_to_deploy).
        self.pos_residual_folded = False

    def switch_to_deploy(self) -> None:
        """The DPE residual as its conv's centre tap; the layer scales in the attention's
        projection and the MLP's ``fc2``."""
        fold_identity_tap_(self.pos_embed)
        self.pos_residual_folded = True
        fold_layer_scale_(self.attn.proj, self.gamma_1)
        fold_layer_scale_(self.mlp.fc2, self.gamma_2)
        self.gamma_1 = self.gamma_2 = None

    def _scale(self, x: torch.Tensor, gamma: Optional[torch.Tensor]) -> torch.Tensor:
        return x if gamma is None else gamma * x

    def _attention(self, x: torch.Tensor) -> torch.Tensor:
        """MHSA over a normed ``(B, H, W, C)`` map, globally or per window."""
        if self.window_size is None:
            b, h, w, c = x.shape
            return self.attn(x.reshape(b, 1, h * w, c)).reshape(b, h, w, c)
        # Padded tokens take part as keys, unmasked, as in the official detection code.
        return apply_in_groups(x, *window_layout(self.window_size),
                               lambda windows, _: self.attn(windows), mask_padding=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pos_embed(x) if self.pos_residual_folded else x + self.pos_embed(x)
        x = x.permute(0, 2, 3, 1)
        x = x + self.drop_path(self._scale(self._attention(self.norm1(x)), self.gamma_1))
        x = x + self.drop_path(self._scale(self.mlp(self.norm2(x)), self.gamma_2))
        return x.permute(0, 3, 1, 2)


@MODELS.register_module()
class UniFormer(HybridBackbone):
    """UniFormer: Unified Transformer for Efficient Spatiotemporal Representation Learning
    (Li et al., ICLR 2022), as a dense-prediction backbone.

    Stages 1-2 use local MHRA (convolutional :class:`UniFormerConvBlock`), stages 3-4 global MHRA
    (:class:`UniFormerSABlock`). The defaults are those of the official detection and
    segmentation backbones: stage 3 in ``'hybrid'`` mode (block ``i`` global when
    ``(i + 1) % 4 == 0``, 14x14-window attention otherwise), stage 4 global, and a newly
    initialised LayerNorm (eps 1e-6) on each output. ``stage_outputs()`` (or
    ``out_norm_cfg=None``) gives the raw stage maps. ``attn_modes=('global', 'global')`` is the
    classification model (quadratic in the number of tokens: expensive at detection sizes).

    Args:
        arch: ``'small'``, ``'small_plus'``, ``'small_plus_dim64'``, ``'base'`` or
            ``'base_ls'`` (aliases ``'s'``, ``'s+'``, ``'b'``, ``'b_ls'``), or a dict with
            ``embed_dims``, ``depths``, ``head_dim`` and optionally ``mlp_ratio`` (4),
            ``conv_stem`` (False) and ``layer_scale_init`` (None: no layer scale). ``head_dim``
            cannot be recovered from weights: it always comes from the arch.
        attn_modes: Attention of stages 3 and 4, each ``'global'``, ``'window'`` or
            ``'hybrid'``.
        window_size: Window side of ``'window'`` and ``'hybrid'`` attention. Windows are
            zero-padded bottom/right after the block's LayerNorm, attend without a mask (as in the
            official code) and are cropped again.
        qkv_bias: Bias of the qkv projections.
        norm_cfg: BatchNorm of the conv blocks and the conv stem (``None``: ``dict(type='BN')``;
            ``SyncBN`` for multi-GPU training).
        act_cfg: Activation config (``None``: GELU).
        out_norm_cfg: Norm on each returned output (``None``: raw stage outputs).
        **kwargs: The contract arguments of :class:`HybridBackbone`: ``out_indices``,
            ``frozen_stages``, ``norm_eval``, ``with_cp``, ``drop_path_rate``, ``channels_last``
            and ``init_cfg`` (``Pretrained`` accepts the official ImageNet files and the official
            detection/segmentation checkpoints).
    """

    arch_zoo = {
        'small': dict(embed_dims=[64, 128, 320, 512], depths=[3, 4, 8, 3], head_dim=64),
        'small_plus': dict(embed_dims=[64, 128, 320, 512], depths=[3, 5, 9, 3], head_dim=32,
                           conv_stem=True),
        'small_plus_dim64': dict(embed_dims=[64, 128, 320, 512], depths=[3, 5, 9, 3],
                                 head_dim=64, conv_stem=True),
        'base': dict(embed_dims=[64, 128, 320, 512], depths=[5, 8, 20, 7], head_dim=64),
        'base_ls': dict(embed_dims=[64, 128, 320, 512], depths=[5, 8, 20, 7], head_dim=64,
                        layer_scale_init=1e-6),
    }
    arch_aliases = {'s': 'small', 's+': 'small_plus', 'b': 'base', 'b_ls': 'base_ls'}
    arch_keys = ('embed_dims', 'depths', 'head_dim')
    arch_defaults = dict(mlp_ratio=4., conv_stem=False, layer_scale_init=None)
    family = 'uniformer'

    def __init__(self,
                 arch: Union[str, Dict[str, Any]] = 'small',
                 attn_modes: Sequence[str] = ('hybrid', 'global'),
                 window_size: int = 14,
                 qkv_bias: bool = True,
                 norm_cfg: Optional[Dict[str, Any]] = None,
                 act_cfg: Optional[Dict[str, Any]] = None,
                 out_norm_cfg: Optional[Mapping[str, Any]] = DEFAULT_OUT_NORM,
                 **kwargs: Any) -> None:
        super().__init__(arch=arch,
                         out_norm_cfg=None if out_norm_cfg is None else dict(out_norm_cfg),
                         **kwargs)
        if isinstance(attn_modes, str) or not isinstance(attn_modes, Sequence) \
                or len(attn_modes) != 2 or any(m not in ATTENTION_MODES for m in attn_modes):
            raise ValueError(f'attn_modes must give stages 3 and 4 one of {ATTENTION_MODES} '
                             f'each, e.g. (\'hybrid\', \'global\'); got {attn_modes!r}')
        if isinstance(window_size, bool) or not isinstance(window_size, int) or window_size < 1:
            raise ValueError(f'window_size must be a positive int, got {window_size!r}')
        self.attn_modes = tuple(attn_modes)
        self.window_size = window_size
        norm_cfg = dict(type='BN') if norm_cfg is None else dict(norm_cfg)
        act_cfg = dict(type='GELU') if act_cfg is None else dict(act_cfg)
        settings = self.arch_settings
        dims, depths, head_dim = settings['embed_dims'], settings['depths'], settings['head_dim']
        mlp_ratio, layer_scale_init = settings['mlp_ratio'], settings['layer_scale_init']
        dpr = self.drop_path_rates(depths)
        in_channels = self.in_channels
        for i in range(NUM_STAGES):
            downsample = UniFormerPatchEmbed(in_channels, dims[i], 4 if i == 0 else 2,
                                             bool(settings['conv_stem']), norm_cfg, act_cfg)
            if i < 2:
                blocks = [UniFormerConvBlock(dims[i], mlp_ratio, dpr[i][j], norm_cfg, act_cfg)
                          for j in range(depths[i])]
            else:
                blocks = [
                    UniFormerSABlock(dims[i], dims[i] // head_dim, mlp_ratio, qkv_bias,
                                       dpr[i][j], self._block_window(self.attn_modes[i - 2], j),
                                       layer_scale_init, act_cfg)
                    for j in range(depths[i])
                ]
            self.stages.append(Stage(downsample, blocks, self.cp_stages[i]))
            in_channels = dims[i]
        # The official initialisation; convolutions and BatchNorms keep PyTorch's defaults.
        init_official_weights_(self, layer_norm=True)
        self._finish_build(dims)

    @classmethod
    def validate_arch(cls, settings: Dict[str, Any]) -> None:
        super().validate_arch(settings)
        head_dim = settings['head_dim']
        if isinstance(head_dim, bool) or not isinstance(head_dim, int) or head_dim < 1:
            raise ValueError(f'UniFormer arch head_dim must be a positive int, got {head_dim!r}')
        if any(dim % head_dim for dim in settings['embed_dims'][2:]):
            raise ValueError(f'UniFormer embed_dims {list(settings["embed_dims"])} of the '
                             f'attention stages (3, 4) are not multiples of head_dim {head_dim}')
        scale = settings['layer_scale_init']
        if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float))):
            raise ValueError(f'UniFormer arch layer_scale_init must be a number or None, got '
                             f'{scale!r}')

    def _block_window(self, mode: str, index: int) -> Optional[int]:
        """Window side of block ``index`` of a stage in ``mode`` (``None``: global)."""
        if mode == 'global' or (mode == 'hybrid' and (index + 1) % 4 == 0):
            return None
        return self.window_size
