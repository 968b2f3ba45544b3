"""A stand-in for mmcv's compiled ops (``mmcv._ext``) where only mmcv's Python code is installed.

The GPU machine of benchmarks/gpu_check.py has no network and no build of mmcv 2.1.0 for its
torch; it gets mmcv's Python package alone (the ``mmcv-lite`` wheel, the same code without the
compiled extension). mmdet and mmseg import ``mmcv.ops``, whose modules look their functions up
in ``mmcv._ext`` at import time, and Mask R-CNN's training step calls three of them: ``nms``
(the RPN's proposals), ``roi_align_forward`` and ``roi_align_backward`` (the RoI heads and the
mask targets). :func:`install` puts a module in ``sys.modules['mmcv._ext']`` that implements
those three with mmcv's semantics (torchvision's kernels where torchvision is installed, which
the GPU machine's image has; plain torch otherwise) and answers every other name with a function
that raises, naming the op: no other op is on the path of the configs the script trains.

Not for users: with mmcv built from source (``tools/setup_env.sh``) the real ops are used.
"""
import importlib.machinery
import importlib.util
import math
import os
import sys
import types
from typing import Callable, Optional

import torch

NAME = 'mmcv._ext'
IMPLEMENTED = ('nms', 'roi_align_forward', 'roi_align_backward')


def _torchvision_ops() -> Optional[types.ModuleType]:
    try:
        import torchvision.ops
    except Exception:  # absent, or built for another torch
        return None
    return torchvision.ops


def _bilinear_gather(feature: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """mmcv's ``bilinear_interpolate`` at points ``(y, x)`` of one map ``feature`` (C, H, W):
    zero outside ``[-1, H] x [-1, W]``, coordinates clamped at 0 and at the last row/column.
    ``y`` and ``x`` broadcast to the points' shape; returns ``(C, *points)``."""
    height, width = feature.shape[-2:]
    y, x = torch.broadcast_tensors(y, x)
    outside = (y < -1.0) | (y > height) | (x < -1.0) | (x > width)
    y = y.clamp(min=0)
    x = x.clamp(min=0)
    y_low = y.floor().long().clamp(max=height - 1)
    x_low = x.floor().long().clamp(max=width - 1)
    y = torch.where(y_low >= height - 1, y_low.to(y.dtype), y)
    x = torch.where(x_low >= width - 1, x_low.to(x.dtype), x)
    y_high = (y_low + 1).clamp(max=height - 1)
    x_high = (x_low + 1).clamp(max=width - 1)
    ly, lx = y - y_low, x - x_low
    hy, hx = 1 - ly, 1 - lx
    flat = feature.reshape(feature.shape[0], -1)

    def at(yy, xx):
        return flat[:, (yy * width + xx).reshape(-1)].reshape(feature.shape[0], *yy.shape)

    value = (hy * hx) * at(y_low, x_low) + (hy * lx) * at(y_low, x_high) + \
        (ly * hx) * at(y_high, x_low) + (ly * lx) * at(y_high, x_high)
    return value.masked_fill(outside, 0)


def roi_align_reference(input: torch.Tensor, rois: torch.Tensor, pooled_height: int,
                        pooled_width: int, spatial_scale: float, sampling_ratio: int,
                        aligned: bool) -> torch.Tensor:
    """mmcv's average RoIAlign in plain torch (differentiable): each of the ``pooled`` bins of
    a RoI averages ``grid_h x grid_w`` bilinear samples (``sampling_ratio``, or
    ``ceil(roi size / pooled size)`` when it is 0)."""
    out = input.new_zeros(rois.shape[0], input.shape[1], pooled_height, pooled_width)
    offset = 0.5 if aligned else 0.0
    for r in range(rois.shape[0]):
        index, x1, y1, x2, y2 = rois[r].tolist()
        start_w, start_h = x1 * spatial_scale - offset, y1 * spatial_scale - offset
        roi_w, roi_h = x2 * spatial_scale - offset - start_w, y2 * spatial_scale - offset - start_h
        if not aligned:
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_h, bin_w = roi_h / pooled_height, roi_w / pooled_width
        grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / pooled_height)
        grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / pooled_width)
        count = max(grid_h * grid_w, 1)
        if grid_h <= 0 or grid_w <= 0:
            continue
        ph = torch.arange(pooled_height, dtype=input.dtype, device=input.device)
        pw = torch.arange(pooled_width, dtype=input.dtype, device=input.device)
        iy = torch.arange(grid_h, dtype=input.dtype, device=input.device)
        ix = torch.arange(grid_w, dtype=input.dtype, device=input.device)
        y = start_h + ph[:, None] * bin_h + (iy[None] + 0.5) * bin_h / grid_h  # (PH, GH)
        x = start_w + pw[:, None] * bin_w + (ix[None] + 0.5) * bin_w / grid_w  # (PW, GW)
        samples = _bilinear_gather(input[int(index)], y[:, :, None, None], x[None, None])
        out[r] = samples.sum(dim=(2, 4)) / count  # (C, PH, GH, PW, GW) -> (C, PH, PW)
    return out


def _roi_align(input, rois, pooled_height, pooled_width, spatial_scale, sampling_ratio,
               aligned):
    # At least float32: half-precision RoI corners would be off by up to a pixel.
    dtype = torch.promote_types(input.dtype, torch.float32)
    ops = _torchvision_ops()
    if ops is not None:
        return ops.roi_align(input.to(dtype), rois.to(dtype), (pooled_height, pooled_width),
                             spatial_scale, sampling_ratio, aligned)
    return roi_align_reference(input.to(dtype), rois.to(dtype), pooled_height, pooled_width,
                               spatial_scale, sampling_ratio, aligned)


def roi_align_forward(input, rois, output, argmax_y, argmax_x, aligned_height, aligned_width,
                      spatial_scale, sampling_ratio, pool_mode, aligned):
    """``mmcv._ext.roi_align_forward``: writes the RoIAlign of ``input`` into ``output``."""
    if pool_mode != 1:
        raise NotImplementedError('mmcv ops stand-in: roi_align supports pool_mode avg only')
    with torch.no_grad():
        output.copy_(_roi_align(input, rois, aligned_height, aligned_width, spatial_scale,
                                sampling_ratio, aligned))


def roi_align_backward(grad_output, rois, argmax_y, argmax_x, grad_input, aligned_height,
                       aligned_width, spatial_scale, sampling_ratio, pool_mode, aligned):
    """``mmcv._ext.roi_align_backward``: adds the gradient of ``input`` to ``grad_input``.
    RoIAlign is linear in its input, so the gradient is the adjoint applied to ``grad_output``,
    read off the forward at any input (zeros here)."""
    if pool_mode != 1:
        raise NotImplementedError('mmcv ops stand-in: roi_align supports pool_mode avg only')
    with torch.enable_grad():
        probe = torch.zeros_like(grad_input, requires_grad=True,
                                 dtype=torch.promote_types(grad_output.dtype, torch.float32))
        out = _roi_align(probe, rois, aligned_height, aligned_width, spatial_scale,
                         sampling_ratio, aligned)
        grad, = torch.autograd.grad(out, probe, grad_output.to(out.dtype))
    grad_input.add_(grad.to(grad_input.dtype))


def nms_reference(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float,
                  offset: int = 0) -> torch.Tensor:
    """Greedy NMS as mmcv's: indices of the kept boxes, highest score first; ``offset`` 1 counts
    box sides as ``x2 - x1 + 1``."""
    order = scores.argsort(descending=True)
    boxes = boxes[order].float()
    areas = (boxes[:, 2] - boxes[:, 0] + offset) * (boxes[:, 3] - boxes[:, 1] + offset)
    suppressed = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        lt = torch.maximum(boxes[i, :2], boxes[i + 1:, :2])
        rb = torch.minimum(boxes[i, 2:], boxes[i + 1:, 2:])
        wh = (rb - lt + offset).clamp(min=0)
        inter = wh[:, 0] * wh[:, 1]
        iou = inter / (areas[i] + areas[i + 1:] - inter)
        suppressed[i + 1:] |= iou > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long, device=boxes.device)]


def nms(boxes, scores, iou_threshold, offset=0):
    """``mmcv._ext.nms``."""
    ops = _torchvision_ops()
    if ops is not None and offset == 0 and boxes.numel():
        return ops.nms(boxes.float(), scores.float(), float(iou_threshold))
    return nms_reference(boxes, scores, float(iou_threshold), int(offset))


def _missing(name: str) -> Callable:
    def op(*args, **kwargs):
        raise NotImplementedError(f'mmcv ops stand-in: mmcv._ext.{name} is not available (mmcv '
                                  f'was installed without its compiled ops)')
    op.__name__ = name
    return op


class _StandInExt(types.ModuleType):
    """``mmcv._ext``: the implemented ops, and a raising function for any other name."""

    def __getattr__(self, name: str) -> Callable:
        if name.startswith('__'):
            raise AttributeError(name)
        return _missing(name)


def needed() -> bool:
    """True where mmcv is importable but its compiled ops are not."""
    if NAME in sys.modules:
        return False
    if importlib.util.find_spec('mmcv') is None:
        return False
    return importlib.util.find_spec(NAME) is None


def install(force: bool = False) -> bool:
    """Puts the stand-in in ``sys.modules['mmcv._ext']`` when mmcv's compiled ops are missing,
    or always with ``force`` or the environment's ``MMCV_OPS_STAND_IN=1`` (before ``mmcv.ops``
    is imported). Returns whether it did."""
    force = force or os.environ.get('MMCV_OPS_STAND_IN') == '1'
    if not force and not needed():
        return False
    module = _StandInExt(NAME, __doc__)
    module.__spec__ = importlib.machinery.ModuleSpec(NAME, loader=None)
    module.__file__ = __file__
    module.STAND_IN = True
    for name in IMPLEMENTED:
        setattr(module, name, globals()[name])
    sys.modules[NAME] = module
    return True
