"""Modules that replace plain layers of the backbones, keeping their parameters and values.

Each is a subclass of the plain layer it replaces (same parameters, buffers and state-dict
keys), swapped in by :func:`~mmhybrid.accel.optimize_for_inference` or
:func:`~mmhybrid.accel.optimize_for_training`:

- :class:`PhaseDilatedConv2d`: a dilated depth-wise convolution as an undilated one over the
  phase grids of its input (inference and training);
- :class:`SpaceToDepthConv2d`: a convolution whose kernel spans several strides, trained as a
  stride-1 convolution over its input's space-to-depth rearrangement;
- :class:`GeluBatchNorm2d`: ``BatchNorm2d(GELU(x))`` in training storing one map, not two;
- :class:`FastMlp`: the token MLP with its activation applied as the first product writes.
"""
from typing import Any, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from mmhybrid.models.layers import Mlp, ceil_div, crop_to
from mmhybrid.models.layers.padding import padding_to_multiple
from .ops import is_channels_last, linear_module_act


class FastMlp(Mlp):
    """:class:`~mmhybrid.models.layers.Mlp` for inference: ``fc2(act(fc1(x)))`` with the
    activation applied as ``fc1``'s product writes its output (oneDNN, where ``fc1`` runs on it)
    or in place on that output."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(linear_module_act(self.fc1, self.act, x))


def phase_form_conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` for a depth-wise conv of stride 1 and dilation ``d > 1`` (LKA's 7x7 of
    dilation 3), as an undilated conv over the ``d x d`` phase grids of the padded map.

    An output ``(i, j)`` reads the padded input at ``(i + d*a, j + d*b)``: all on the phase
    ``(i mod d, j mod d)``. So the padded map, rearranged into its ``d*d`` phases
    (``pixel_unshuffle``: ``d*d`` channels per channel), goes through the plain ``k x k`` conv
    (each channel's weight repeated over its phases, no padding), and ``pixel_shuffle`` puts the
    outputs back in place: the same products in the same order. On the CPU oneDNN runs dilated
    depth-wise convs as im2col products and the undilated one as a direct kernel, several times
    faster (docs/benchmarks.md). Each phase grid must be at least the kernel's size. The result
    keeps ``x``'s memory format.
    """
    (kernel, _), (dilation, _), (padding, _) = conv.kernel_size, conv.dilation, conv.padding
    padded_h, padded_w = x.shape[-2] + 2 * padding, x.shape[-1] + 2 * padding
    # While compiling, one more phase row and column (cropped with the rest): the conv's output
    # is then never a single row or column, which a dynamic graph would specialise on.
    spare = dilation if torch.compiler.is_compiling() else 0
    extra_h = padding_to_multiple(padded_h, dilation) + spare
    extra_w = padding_to_multiple(padded_w, dilation) + spare
    channels_last = is_channels_last(x)
    phases = F.pixel_unshuffle(
        F.pad(x, (padding, padding + extra_w, padding, padding + extra_h)), dilation)
    repeats = dilation * dilation
    bias = None if conv.bias is None else conv.bias.repeat_interleave(repeats)
    out = F.conv2d(phases, conv.weight.repeat_interleave(repeats, 0), bias,
                   groups=conv.groups * repeats)
    del phases  # each intermediate map is freed as soon as the next one exists
    out = F.pixel_shuffle(out, dilation)
    out_h, out_w = padded_h - dilation * (kernel - 1), padded_w - dilation * (kernel - 1)
    return crop_to(out, (out_h, out_w)).contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format)


class PhaseDilatedConv2d(nn.Conv2d):
    """A dilated depth-wise ``nn.Conv2d`` computed by :func:`phase_form_conv` on the CPU (while
    compiling too: inductor lowers the phase form); exported graphs, other devices and maps
    whose phase grids are smaller than the kernel run the plain convolution."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.device.type == 'cpu' and x.dim() == 4 and not torch.compiler.is_exporting()
                and min(ceil_div(side + 2 * self.padding[0], self.dilation[0])
                        for side in x.shape[-2:]) >= self.kernel_size[0]):
            return phase_form_conv(self, x)
        return nn.Conv2d.forward(self, x)

    @staticmethod
    def fits(conv: nn.Module) -> bool:
        """Whether ``conv`` is a square depth-wise conv of stride 1, dilation > 1 and integer
        zero padding, the form :func:`phase_form_conv` computes."""
        return (type(conv) is nn.Conv2d and isinstance(conv.padding, tuple)
                and conv.padding_mode == 'zeros' and len({*conv.kernel_size}) == 1
                and len({*conv.dilation}) == 1 and len({*conv.padding}) == 1
                and conv.stride == (1, 1) and conv.dilation[0] > 1
                and conv.groups == conv.in_channels == conv.out_channels)


def space_to_depth_conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` for a square conv whose kernel ``k`` is a multiple of its stride ``s``
    (zero padding, no dilation or groups), as a stride-1 conv with a ``k/s`` kernel over the
    input's ``s x s`` space-to-depth rearrangement (``pixel_unshuffle`` of the padded input,
    the weight rearranged the same way): the same products, summed in another order."""
    kernel, stride, padding = conv.kernel_size[0], conv.stride[0], conv.padding[0]
    height, width = x.shape[-2:]
    taps = kernel // stride
    # The input rows/columns (padding included) the conv reads: its outputs plus the taps.
    need_h = ((height + 2 * padding - kernel) // stride + taps) * stride
    need_w = ((width + 2 * padding - kernel) // stride + taps) * stride
    # need <= size + 2 * padding: pad as the conv does, then drop what no output reads (no
    # max() of sizes, which a compiled graph with dynamic sizes could not order).
    x = F.pad(x, (padding, padding, padding, padding))[..., :need_h, :need_w]
    out_channels, in_channels = conv.weight.shape[:2]
    weight = conv.weight.view(out_channels, in_channels, taps, stride, taps, stride).permute(
        0, 1, 3, 5, 2, 4).reshape(out_channels, in_channels * stride * stride, taps, taps)
    return F.conv2d(F.pixel_unshuffle(x, stride), weight, conv.bias)



# Kernels at least this many strides wide are trained as space-to-depth convolutions.
SPACE_TO_DEPTH_MIN_TAPS = 4


class SpaceToDepthConv2d(nn.Conv2d):
    """A square ``nn.Conv2d`` whose kernel spans at least :data:`SPACE_TO_DEPTH_MIN_TAPS` of its
    strides, computed by :func:`space_to_depth_conv` when its weight gets a gradient: oneDNN's
    weight gradient of the plain conv is slow for such kernels (CrossFormer's 16x16 and 32x32
    kernels of stride 4; much slower still on a channels-last image, the layout inductor gives
    every conv input on the CPU). Inference and exported graphs keep the plain conv, whose
    forward is faster."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (torch.is_grad_enabled() and self.weight.requires_grad
                and not torch.compiler.is_exporting()):
            return space_to_depth_conv(self, x)
        return super().forward(x)

    @staticmethod
    def fits(conv: nn.Module) -> bool:
        """Whether ``conv`` is a square conv (no dilation or groups, zero padding) whose kernel
        is a multiple of its stride spanning at least :data:`SPACE_TO_DEPTH_MIN_TAPS` strides."""
        if type(conv) is not nn.Conv2d or len({*conv.kernel_size}) != 1 \
                or len({*conv.stride}) != 1 or conv.dilation != (1, 1) or conv.groups != 1 \
                or conv.padding_mode != 'zeros' or not isinstance(conv.padding, tuple) \
                or len({*conv.padding}) != 1:
            return False
        kernel, stride = conv.kernel_size[0], conv.stride[0]
        return kernel % stride == 0 and kernel // stride >= SPACE_TO_DEPTH_MIN_TAPS


class GeluBatchNorm(torch.autograd.Function):
    """``batch_norm(gelu(x))`` with batch statistics; saves ``x``, not ``gelu(x)``."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: Optional[torch.Tensor],
                bias: Optional[torch.Tensor], running_mean: Optional[torch.Tensor],
                running_var: Optional[torch.Tensor], momentum: float,
                eps: float) -> torch.Tensor:
        hidden = F.gelu(x)
        out, save_mean, save_invstd = torch.ops.aten.native_batch_norm(
            hidden, weight, bias, running_mean, running_var, True, momentum, eps)
        del hidden
        # The running statistics are not read by a training-mode backward (and are updated in
        # place by later forwards): not saved.
        ctx.save_for_backward(x, weight, save_mean, save_invstd)
        ctx.eps = eps
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> Tuple[Optional[torch.Tensor], ...]:
        x, weight, save_mean, save_invstd = ctx.saved_tensors
        hidden = F.gelu(x)
        grad_hidden, grad_weight, grad_bias = torch.ops.aten.native_batch_norm_backward(
            grad_out, hidden, weight, None, None, save_mean, save_invstd, True, ctx.eps,
            list(ctx.needs_input_grad[:3]))
        del hidden
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.gelu_backward(grad_hidden, x)
        return grad_x, grad_weight, grad_bias, None, None, None, None



class GeluBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` applied to ``GELU(x)``, for a plain BatchNorm that follows an exact GELU
    (which :func:`~mmhybrid.accel.optimize_for_training` replaces by ``nn.Identity``).

    With batch statistics and a gradient recorded it runs :class:`GeluBatchNorm`: autograd would
    keep GELU's input and, for the BatchNorm backward, GELU's output (two maps of the same
    size); it keeps only the input and recomputes GELU's output in the backward. The kernels
    are those of the two modules, so outputs, running statistics and gradients are unchanged.
    Anything else (eval, ``norm_eval``, autocast, no gradient) runs GELU and the BatchNorm.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (torch.is_grad_enabled() and self.training and x.dim() == 4
                and x.numel() > x.shape[1]  # else BatchNorm's own error (one value per channel)
                and not torch.is_autocast_enabled(x.device.type)
                and (not self.track_running_stats or self.running_mean is not None)):
            momentum = 0.0 if self.momentum is None else self.momentum
            if self.track_running_stats and self.num_batches_tracked is not None:
                self.num_batches_tracked.add_(1)
                if self.momentum is None:  # cumulative moving average
                    momentum = 1.0 / float(self.num_batches_tracked)
            return GeluBatchNorm.apply(x, self.weight, self.bias, self.running_mean,
                                       self.running_var, momentum, self.eps)
        return super().forward(F.gelu(x))
