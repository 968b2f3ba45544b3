"""VAN's modules for CPU inference and for training.

Inference (:func:`optimize_van_for_inference`, on a deployed backbone): LKA's dilated depth-wise
convolution in its phase form (:class:`~mmhybrid.accel.layers.PhaseDilatedConv2d`); the
attention's GELU in place on its first projection's output; the MLP in bands of rows (its
hidden maps have 8x the channels in stages 1-2) with the depth-wise conv and its GELU in one
call. Training (:func:`optimize_van_for_training`): the phase form.
"""
from typing import Callable

import torch
import torch.nn as nn

from mmhybrid.models.backbones.van import VANAttention, VANMlp
from .layers import PhaseDilatedConv2d
from .ops import act_, conv_gelu, map_row_bands, rows_per_band


class FastVANAttention(VANAttention):
    """:class:`VANAttention` for inference: the activation overwrites ``proj_1``'s output."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.proj_2(self.lka(act_(self.act, self.proj_1(x))))
        return out + x if self.with_shortcut else out


class FastVANMlp(VANMlp):
    """:class:`VANMlp` for inference, in bands of rows (the 3x3 conv looks one row up and
    down), the depth-wise conv and its GELU in one call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return map_row_bands(self.band, x, halo=1, rows=rows_per_band(x, self.fc1.out_channels))

    def band(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(conv_gelu(self.dwconv, self.act, self.fc1(x)))


def _phase_form(backbone: nn.Module, swap: Callable[..., bool]) -> None:
    for module in backbone.modules():
        if PhaseDilatedConv2d.fits(module):
            swap(module, PhaseDilatedConv2d, bypass=False)


def optimize_van_for_inference(backbone: nn.Module, swap: Callable[..., bool],
                               onednn: bool) -> None:
    """Swaps the inference modules into a deployed VAN (see the module docstring)."""
    _phase_form(backbone, swap)
    for stage in backbone.stages:
        for block in stage.blocks:
            swap(block.attn, FastVANAttention)
            swap(block.mlp, FastVANMlp)


def optimize_van_for_training(backbone: nn.Module, swap: Callable[..., bool],
                              phase_form: bool) -> None:
    """Swaps the training savers into VAN (see the module docstring)."""
    if phase_form:
        _phase_form(backbone, swap)
