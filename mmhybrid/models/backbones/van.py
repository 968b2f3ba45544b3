"""VAN: Visual Attention Network (Guo et al., arXiv 2202.09741), for dense prediction.

Semantics follow the authors' ``VAN-Classification/models/van.py``; the module layout is
mmhybrid's own (``stages.i.{downsample,blocks,norm}``), the converter in
``mmhybrid.checkpoint.van`` maps the released files onto it.
"""
import math
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmengine.model.weight_init import trunc_normal_

from mmhybrid.registry import MODELS
from ..layers import LayerNorm2d, maybe_checkpoint
from .base import HybridBackbone


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj_2(self.lka(self.act(self.proj_1(x)))) + x


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
        layer_scale_init: Initial value of the per-channel layer scales.
        norm_cfg: Config of the two block norms.
        act_cfg: Activation config.
    """

    def __init__(self,
                 dim: int,
                 mlp_ratio: float,
                 drop_path: float,
                 layer_scale_init: float,
                 norm_cfg: Dict[str, Any],
                 act_cfg: Dict[str, Any]) -> None:
        super().__init__()
        self.norm1 = build_norm_layer(norm_cfg, dim)[1]
        self.attn = VANAttention(dim, act_cfg)
        self.norm2 = build_norm_layer(norm_cfg, dim)[1]
        self.mlp = VANMlp(dim, int(dim * mlp_ratio), act_cfg)
        self.layer_scale_1 = nn.Parameter(torch.full((dim, ), layer_scale_init))
        self.layer_scale_2 = nn.Parameter(torch.full((dim, ), layer_scale_init))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.layer_scale_1[:, None, None] * self.attn(self.norm1(x)))
        x = x + self.drop_path(self.layer_scale_2[:, None, None] * self.mlp(self.norm2(x)))
        return x


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


class VANStage(nn.Module):
    """Patch embedding, VAN blocks and the LayerNorm that ends every VAN stage.

    Args:
        downsample: The stage's patch embedding.
        blocks: The stage's blocks.
        dim: Channels of the stage.
        stage_norm_eps: Epsilon of the closing LayerNorm.
        with_cp: Checkpoint every block.
    """

    def __init__(self,
                 downsample: nn.Module,
                 blocks: List[nn.Module],
                 dim: int,
                 stage_norm_eps: float,
                 with_cp: bool) -> None:
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.ModuleList(blocks)
        self.norm = LayerNorm2d(dim, eps=stage_norm_eps)
        self.with_cp = with_cp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        for block in self.blocks:
            x = maybe_checkpoint(block, x, enabled=self.with_cp)
        return self.norm(x)


@MODELS.register_module()
class VAN(HybridBackbone):
    """VAN: Visual Attention Network (Guo et al., 2022), as a dense-prediction backbone.

    Fully convolutional: any input size runs; at sizes divisible by 32 the outputs are exactly
    ``H/s x W/s``, otherwise ``ceil`` sizes as in the official code. Stage outputs are taken
    after the LayerNorm that ends each stage (part of the pretrained trunk).

    Args:
        arch: ``'b0'`` .. ``'b6'`` (aliases ``tiny``, ``small``, ``base``, ``large`` for
            b0..b3), or a dict with ``embed_dims``, ``depths``, ``mlp_ratios``.
        out_indices: Stages whose outputs are returned.
        frozen_stages: ``-1`` for none, ``k`` to freeze stages ``0..k``.
        norm_eval: Keep BatchNorms in eval mode while training.
        with_cp: Activation checkpointing (bool or stage indices).
        drop_path_rate: Stochastic depth rate of the last block.
        layer_scale_init: Initial layer-scale value.
        stage_norm_eps: Epsilon of the LayerNorm ending each stage (1e-6 as in the
            classification code that produced the checkpoints).
        norm_cfg: Norm of the patch embeddings and blocks.
        act_cfg: Activation config.
        out_norm_cfg: Optional extra norm on each output (``None``: VAN's stage norms already
            normalise every output).
        channels_last: Memory layout of the stages (``None``: see ``HybridBackbone``).
        init_cfg: Initialisation config; ``Pretrained`` accepts the official ``van_*.pth.tar``
            files and mmpretrain-converted VAN files.
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
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: Union[bool, Sequence[int]] = False,
                 drop_path_rate: float = 0.,
                 layer_scale_init: float = 1e-2,
                 stage_norm_eps: float = 1e-6,
                 norm_cfg: Optional[Dict[str, Any]] = None,
                 act_cfg: Optional[Dict[str, Any]] = None,
                 out_norm_cfg: Optional[Dict[str, Any]] = None,
                 channels_last: Optional[bool] = None,
                 init_cfg: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(arch=arch, out_indices=out_indices, frozen_stages=frozen_stages,
                         norm_eval=norm_eval, with_cp=with_cp, drop_path_rate=drop_path_rate,
                         out_norm_cfg=out_norm_cfg, channels_last=channels_last,
                         init_cfg=init_cfg)
        norm_cfg = dict(type='BN') if norm_cfg is None else dict(norm_cfg)
        act_cfg = dict(type='GELU') if act_cfg is None else dict(act_cfg)
        dims = self.arch_settings['embed_dims']
        depths = self.arch_settings['depths']
        mlp_ratios = self.arch_settings['mlp_ratios']
        dpr = self.drop_path_rates(depths)
        in_channels = self.in_channels
        for i in range(4):
            downsample = VANPatchEmbed(in_channels, dims[i], kernel_size=7 if i == 0 else 3,
                                       stride=4 if i == 0 else 2, norm_cfg=norm_cfg)
            blocks = [
                VANBlock(dims[i], mlp_ratios[i], dpr[i][j], layer_scale_init, norm_cfg, act_cfg)
                for j in range(depths[i])
            ]
            self.stages.append(VANStage(downsample, blocks, dims[i], stage_norm_eps,
                                        self.cp_stages[i]))
            in_channels = dims[i]
        self._init_default_weights()
        self._finish_build(dims)

    def _init_default_weights(self) -> None:
        # The official initialisation: conv weights N(0, sqrt(2 / fan_out)), zero biases.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0, math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
