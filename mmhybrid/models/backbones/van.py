"""VAN: Visual Attention Network (Guo et al., arXiv 2202.09741), for dense prediction.

Semantics follow the authors' ``VAN-Classification/models/van.py``; the module layout is
mmhybrid's own (``stages.i.{downsample,blocks,norm}``), the converter in
``mmhybrid.checkpoint.van`` maps the released files onto it.
"""
from typing import Any, Dict, Optional, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath

from mmhybrid.registry import MODELS
from ..layers import LayerNorm2d, Stage, init_official_weights_
from ..layers.folding import bn_affine, fold_affine_after_, fold_affine_before_, fold_norms_
from .base import NUM_STAGES, HybridBackbone


class LargeKernelAttention(nn.Module):
    """LKA: ``x * 1x1(dw7x7 dilation 3(dw5x5(x)))`` (a gate, no sigmoid).

    Args:
        dim: Number of channels.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.conv_spatial = nn.Conv2d(dim, dim, 7, padding=9, groups=dim, dilation=3)
        self.conv1 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv1(self.conv_spatial(self.conv0(x)))


class VANAttention(nn.Module):
    """Spatial attention: ``x + 1x1(LKA(act(1x1(x))))`` (the shortcut is inside).

    Args:
        dim: Number of channels.
        act_cfg: Activation between the first projection and LKA.
    """

    def __init__(self, dim: int, act_cfg: Dict[str, Any]) -> None:
        super().__init__()
        self.proj_1 = nn.Conv2d(dim, dim, 1)
        self.act = build_activation_layer(act_cfg)
        self.lka = LargeKernelAttention(dim)
        self.proj_2 = nn.Conv2d(dim, dim, 1)
        # False once the block holds the shortcut (VANBlock.switch_to_deploy).
        self.with_shortcut = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.proj_2(self.lka(self.act(self.proj_1(x))))
        return out + x if self.with_shortcut else out


class VANMlp(nn.Module):
    """Conv MLP: 1x1 → dw3x3 (bias) → act → 1x1.

    Args:
        dim: Input and output channels.
        hidden_dim: Hidden channels.
        act_cfg: Activation after the depth-wise conv.
    """

    def __init__(self, dim: int, hidden_dim: int, act_cfg: Dict[str, Any]) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden_dim, 1)
        self.dwconv = nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1, groups=hidden_dim)
        self.act = build_activation_layer(act_cfg)
        self.fc2 = nn.Conv2d(hidden_dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x))))


class VANBlock(nn.Module):
    """``x + DropPath(λ1·Attn(BN(x)))``, then ``x + DropPath(λ2·MLP(BN(x)))``.

    Args:
        dim: Number of channels.
        mlp_ratio: MLP hidden channels / ``dim`` (truncated to int).
        drop_path: Stochastic depth rate of this block.
        layer_scale_init: Initial value of the per-channel layer scales, or ``None`` for none.
        norm_cfg: Config of the two block norms.
        act_cfg: Activation config.
    """

    def __init__(self,
                 dim: int,
                 mlp_ratio: float,
                 drop_path: float,
                 layer_scale_init: Optional[float],
                 norm_cfg: Dict[str, Any],
                 act_cfg: Dict[str, Any]) -> None:
        super().__init__()
        self.norm1 = build_norm_layer(norm_cfg, dim)[1]
        self.attn = VANAttention(dim, act_cfg)
        self.norm2 = build_norm_layer(norm_cfg, dim)[1]
        self.mlp = VANMlp(dim, int(dim * mlp_ratio), act_cfg)
        if layer_scale_init is not None:
            self.layer_scale_1 = nn.Parameter(torch.full((dim, ), float(layer_scale_init)))
            self.layer_scale_2 = nn.Parameter(torch.full((dim, ), float(layer_scale_init)))
        else:
            self.layer_scale_1 = self.layer_scale_2 = None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        # Per-channel factor of the input in the deployed attention half (switch_to_deploy).
        self.shortcut_scale: Optional[nn.Parameter] = None

    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        """Both BatchNorms and both layer scales folded into the 1x1 convs next to them.

        With ``norm1(x) = x * s + t`` and layer scale ``g``, the attention half
        ``x + g * (proj_2(h) + norm1(x))`` (the attention's own shortcut adds its normed input)
        is ``proj_2'(h) + x * (1 + g * s)`` for ``proj_2' = g * (proj_2 + t)``, and ``proj_1``
        takes ``norm1`` in (a 1x1 conv: exact); the MLP half ``x + g2 * fc2(...(norm2(x)))``
        has ``norm2`` in ``fc1`` and ``g2`` in ``fc2``. Blocks whose norms are not BatchNorms
        are left as they are.
        """
        norm1, norm2 = bn_affine(self.norm1), bn_affine(self.norm2)
        if norm1 is None or norm2 is None:
            return
        (scale1, shift1), dim = norm1, self.attn.proj_2.out_channels
        gain1, gain2 = (torch.ones(dim, dtype=scale1.dtype, device=scale1.device)
                        if g is None else g.detach() for g in (self.layer_scale_1,
                                                               self.layer_scale_2))
        fold_affine_before_(self.attn.proj_1, norm1)
        fold_affine_after_(self.attn.proj_2, (gain1, shift1 * gain1))
        self.attn.with_shortcut = False
        self.shortcut_scale = nn.Parameter(torch.addcmul(torch.ones_like(gain1), gain1, scale1),
                                           requires_grad=False)
        fold_affine_before_(self.mlp.fc1, norm2)
        fold_affine_after_(self.mlp.fc2, (gain2, torch.zeros_like(gain2)))
        self.norm1, self.norm2 = nn.Identity(), nn.Identity()
        self.layer_scale_1 = self.layer_scale_2 = None

    @staticmethod
    def _scale(x: torch.Tensor, scale: Optional[torch.Tensor]) -> torch.Tensor:
        return x if scale is None else scale[:, None, None] * x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shortcut_scale is not None:  # deployed (inference only: no drop path)
            x = torch.addcmul(self.attn(x), x, self.shortcut_scale[:, None, None])
            return x + self.mlp(x)
        x = x + self.drop_path(self._scale(self.attn(self.norm1(x)), self.layer_scale_1))
        return x + self.drop_path(self._scale(self.mlp(self.norm2(x)), self.layer_scale_2))


class VANPatchEmbed(nn.Module):
    """Overlapping patch embedding: conv (padding k//2) followed by a norm.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Conv kernel size (7 for the first stage, 3 after).
        stride: Conv stride (4 for the first stage, 2 after).
        norm_cfg: Norm config.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int,
                 stride: int,
                 norm_cfg: Dict[str, Any]) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=kernel_size // 2)
        self.norm = build_norm_layer(norm_cfg, out_channels)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))

    def switch_to_deploy(self) -> None:
        """The BatchNorm folded into the conv (it follows the conv directly)."""
        fold_norms_(self, after=[('proj', 'norm')])


@MODELS.register_module()
class VAN(HybridBackbone):
    """VAN: Visual Attention Network (Guo et al., 2022), as a dense-prediction backbone.

    Fully convolutional: any input size runs; at sizes divisible by 32 the outputs are exactly
    ``H/s x W/s``, otherwise ``ceil`` sizes as in the official code. Stage outputs are taken
    after the LayerNorm that ends each stage (part of the pretrained trunk).

    Args:
        arch: ``'b0'`` .. ``'b6'`` (aliases ``tiny``, ``small``, ``base``, ``large`` for
            b0..b3), or a dict with ``embed_dims``, ``depths``, ``mlp_ratios``.
        layer_scale_init: Initial layer-scale value, or ``None`` for blocks without layer
            scales.
        stage_norm_eps: Epsilon of the LayerNorm ending each stage (1e-6 as in the
            classification code that produced the checkpoints).
        norm_cfg: Norm of the patch embeddings and blocks.
        act_cfg: Activation config.
        **kwargs: The contract arguments of :class:`HybridBackbone`: ``out_indices``,
            ``frozen_stages``, ``norm_eval``, ``with_cp``, ``drop_path_rate``, ``out_norm_cfg``,
            ``channels_last`` and ``init_cfg`` (``Pretrained`` accepts the official
            ``van_*.pth.tar`` files and mmpretrain-converted VAN files).
    """

    arch_zoo = {
        'b0': dict(embed_dims=[32, 64, 160, 256], depths=[3, 3, 5, 2], mlp_ratios=[8, 8, 4, 4]),
        'b1': dict(embed_dims=[64, 128, 320, 512], depths=[2, 2, 4, 2], mlp_ratios=[8, 8, 4, 4]),
        'b2': dict(embed_dims=[64, 128, 320, 512], depths=[3, 3, 12, 3], mlp_ratios=[8, 8, 4, 4]),
        'b3': dict(embed_dims=[64, 128, 320, 512], depths=[3, 5, 27, 3], mlp_ratios=[8, 8, 4, 4]),
        'b4': dict(embed_dims=[64, 128, 320, 512], depths=[3, 6, 40, 3], mlp_ratios=[8, 8, 4, 4]),
        'b5': dict(embed_dims=[96, 192, 480, 768], depths=[3, 3, 24, 3], mlp_ratios=[8, 8, 4, 4]),
        'b6': dict(embed_dims=[96, 192, 384, 768], depths=[6, 6, 90, 6], mlp_ratios=[8, 8, 4, 4]),
    }
    arch_aliases = {'tiny': 'b0', 'small': 'b1', 'base': 'b2', 'large': 'b3'}
    arch_keys = ('embed_dims', 'depths', 'mlp_ratios')
    family = 'van'
    # Depthwise and 1x1 convolutions dominate: channels-last is faster on the CPU.
    default_channels_last = True

    def __init__(self,
                 arch: Union[str, Dict[str, Any]] = 'b2',
                 layer_scale_init: Optional[float] = 1e-2,
                 stage_norm_eps: float = 1e-6,
                 norm_cfg: Optional[Dict[str, Any]] = None,
                 act_cfg: Optional[Dict[str, Any]] = None,
                 **kwargs: Any) -> None:
        super().__init__(arch=arch, **kwargs)
        norm_cfg = dict(type='BN') if norm_cfg is None else dict(norm_cfg)
        act_cfg = dict(type='GELU') if act_cfg is None else dict(act_cfg)
        dims = self.arch_settings['embed_dims']
        depths = self.arch_settings['depths']
        mlp_ratios = self.arch_settings['mlp_ratios']
        dpr = self.drop_path_rates(depths)
        in_channels = self.in_channels
        for i in range(NUM_STAGES):
            downsample = VANPatchEmbed(in_channels, dims[i], kernel_size=7 if i == 0 else 3,
                                       stride=4 if i == 0 else 2, norm_cfg=norm_cfg)
            blocks = [
                VANBlock(dims[i], mlp_ratios[i], dpr[i][j], layer_scale_init, norm_cfg, act_cfg)
                for j in range(depths[i])
            ]
            # The LayerNorm that ends every VAN stage is part of the pretrained trunk.
            self.stages.append(Stage(downsample, blocks, self.cp_stages[i],
                                     norm=LayerNorm2d(dims[i], eps=stage_norm_eps)))
            in_channels = dims[i]
        # The official initialisation: conv weights N(0, sqrt(2 / fan_out)) per group, zero biases.
        init_official_weights_(self, conv='fan_out_per_group')
        self._finish_build(dims)
