"""The parts of an mmseg segmenter or mmdet detector that are exported to ONNX, as modules.

Each graph takes the image as the data loader gives it (``(1, 3, H, W)`` float pixels in the
loaded channel order) and applies the model's ``data_preprocessor`` normalisation itself, so
that a served model needs nothing but the resized image:

- :class:`SegmenterGraph`: image → per-class logits at the input size (``encode_decode``,
  i.e. mmseg's ``mode='whole'`` inference).
- :class:`DenseHeadGraph`: image → the raw per-level outputs of a one-stage detector's head
  (RetinaNet: classification logits and box deltas), before anchors, decoding and NMS.
- :class:`TwoStageGraph`: image → the feature maps the RoI head reads and the raw per-level
  outputs of the RPN head; :class:`RoIHeadGraph` runs a box or mask head on RoI features.
  Proposals, RoIAlign, decoding and NMS are :mod:`mmhybrid.deploy.postprocess`'s.
"""
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models.layers import pad_to_multiple


def _normalisation(data_preprocessor: nn.Module) -> Tuple[torch.Tensor, torch.Tensor, bool]:
    mean = getattr(data_preprocessor, 'mean', None)
    std = getattr(data_preprocessor, 'std', None)
    if mean is None or std is None:
        raise ValueError('the model\'s data_preprocessor does not normalise (no mean/std); '
                         'export needs one that does')
    # mmdet's ImgDataPreprocessor and mmseg's SegDataPreProcessor name the flag differently.
    swap = bool(getattr(data_preprocessor, '_channel_conversion', False)
                or getattr(data_preprocessor, 'channel_conversion', False))
    return mean.detach().clone().reshape(1, -1, 1, 1), \
        std.detach().clone().reshape(1, -1, 1, 1), swap


class _ImageGraph(nn.Module):
    """Normalises ``(1, 3, H, W)`` pixels as the model's data_preprocessor does at test time,
    padding bottom/right to its ``pad_size_divisor`` (mmdet) with its ``pad_value``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        preprocessor = model.data_preprocessor
        mean, std, swap = _normalisation(preprocessor)
        self.register_buffer('mean', mean, persistent=False)
        self.register_buffer('std', std, persistent=False)
        self.swap_channels = swap
        self.pad_divisor = int(getattr(preprocessor, 'pad_size_divisor', 1) or 1)
        self.pad_value = float(getattr(preprocessor, 'pad_value', 0))
        seg_test_cfg = getattr(preprocessor, 'test_cfg', None) or {}
        if seg_test_cfg.get('size') or seg_test_cfg.get('size_divisor'):
            raise ValueError('segmenters whose data_preprocessor pads test images '
                             f'(test_cfg={dict(seg_test_cfg)}) are not supported for export')

    def normalise(self, image: torch.Tensor) -> torch.Tensor:
        if self.swap_channels:
            image = image.flip(1)
        image = (image - self.mean) / self.std
        if self.pad_divisor > 1:
            image = pad_to_multiple(image, self.pad_divisor, value=self.pad_value)
        return image


class SegmenterGraph(_ImageGraph):
    """Image → ``(1, num_classes, H, W)`` logits, as ``EncoderDecoder.encode_decode``."""

    output_names = ('seg_logits', )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[2], image.shape[3]
        meta = dict(img_shape=(height, width), ori_shape=(height, width),
                    pad_shape=(height, width))
        return self.model.encode_decode(self.normalise(image), [meta])


class DenseHeadGraph(_ImageGraph):
    """Image → ``cls_score_i`` and ``bbox_pred_i`` of every pyramid level (one-stage head)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self.num_levels = len(model.bbox_head.prior_generator.strides)
        self.output_names = tuple(f'cls_score_{i}' for i in range(self.num_levels)) + \
            tuple(f'bbox_pred_{i}' for i in range(self.num_levels))

    def forward(self, image: torch.Tensor) -> List[torch.Tensor]:
        cls_scores, bbox_preds = self.model.bbox_head(
            self.model.extract_feat(self.normalise(image)))[:2]
        return list(cls_scores) + list(bbox_preds)


class TwoStageGraph(_ImageGraph):
    """Image → ``feat_i`` (the maps the RoI extractors read) and ``rpn_cls_i``/``rpn_bbox_i``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self.num_feats = model.roi_head.bbox_roi_extractor.num_inputs
        self.num_levels = len(model.rpn_head.prior_generator.strides)
        self.output_names = tuple(f'feat_{i}' for i in range(self.num_feats)) + \
            tuple(f'rpn_cls_{i}' for i in range(self.num_levels)) + \
            tuple(f'rpn_bbox_{i}' for i in range(self.num_levels))

    def forward(self, image: torch.Tensor) -> List[torch.Tensor]:
        feats = self.model.extract_feat(self.normalise(image))
        cls_scores, bbox_preds = self.model.rpn_head(feats)
        return list(feats[:self.num_feats]) + list(cls_scores) + list(bbox_preds)


class RoIHeadGraph(nn.Module):
    """RoI features ``(K, C, S, S)`` → a box head's ``cls_score``/``bbox_pred`` or a mask
    head's ``mask_pred``."""

    def __init__(self, head: nn.Module, kind: str) -> None:
        super().__init__()
        if kind not in ('bbox', 'mask'):
            raise ValueError(f'kind must be bbox or mask, not {kind!r}')
        self.head = head
        self.kind = kind
        self.output_names = ('cls_score', 'bbox_pred') if kind == 'bbox' else ('mask_pred', )

    def forward(self, roi_feats: torch.Tensor):
        out = self.head(roi_feats)
        return list(out) if self.kind == 'bbox' else [out]


class MatrixAdaptiveAvgPool2d(nn.Module):
    """``nn.AdaptiveAvgPool2d`` as two products with averaging matrices built from the input
    size, so that an exported graph pools any input size (ONNX's pooling nodes have fixed
    kernels, which the exporter would take from the traced size). Bin ``i`` of ``s`` over ``n``
    inputs spans ``[floor(i n / s), ceil((i + 1) n / s))``, as PyTorch's."""

    def __init__(self, output_size) -> None:
        super().__init__()
        self.output_size = _pair(output_size)

    @staticmethod
    def _matrix(bins: int, size, like: torch.Tensor) -> torch.Tensor:
        index = torch.arange(bins, device=like.device)
        start = index * size // bins
        end = ((index + 1) * size + bins - 1) // bins
        pos = torch.arange(size, device=like.device)
        inside = (pos[None] >= start[:, None]) & (pos[None] < end[:, None])
        return inside.to(like.dtype) / (end - start)[:, None].to(like.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = self._matrix(self.output_size[0], x.shape[-2], x)
        cols = self._matrix(self.output_size[1], x.shape[-1], x)
        return torch.einsum('ih,bchw,jw->bcij', rows, x, cols)


class IntegerUpsample(nn.Module):
    """An ``Upsample`` by an integer ``scale_factor`` computed as an explicit output size
    ``(H * s, W * s)``: the same result, without the float size (``floor(s * H)``) that a traced
    graph would fix to the traced size."""

    def __init__(self, scale: int, mode: str, align_corners) -> None:
        super().__init__()
        self.scale, self.mode, self.align_corners = scale, mode, align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = (x.shape[-2] * self.scale, x.shape[-1] * self.scale)
        return F.interpolate(x, size=size, mode=self.mode, align_corners=self.align_corners)


def _integer_scale(module: nn.Module):
    scale = getattr(module, 'scale_factor', None)
    if getattr(module, 'size', None) is not None or scale is None:
        return None
    scales = set(scale) if isinstance(scale, (tuple, list)) else {scale}
    if len(scales) != 1:
        return None
    scale = float(scales.pop())
    return int(scale) if scale.is_integer() else None


def make_exportable(model: nn.Module) -> int:
    """Replaces, in place (on the copy being exported), the modules whose ONNX form would be
    fixed to the traced size: ``nn.AdaptiveAvgPool2d`` (UPerNet's pyramid pooling) by
    :class:`MatrixAdaptiveAvgPool2d` and integer-scale ``Upsample`` modules (Semantic FPN's
    heads) by :class:`IntegerUpsample`. Returns how many modules were replaced."""
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            replacement = None
            if type(child) is nn.AdaptiveAvgPool2d:
                replacement = MatrixAdaptiveAvgPool2d(child.output_size)
            elif type(child).__name__ == 'Upsample' and _integer_scale(child):
                replacement = IntegerUpsample(_integer_scale(child), child.mode,
                                              getattr(child, 'align_corners', None))
            if replacement is not None:
                setattr(parent, name, replacement)
                count += 1
    return count


def graph_kind(model: nn.Module) -> str:
    """``'segmenter'``, ``'one_stage'`` or ``'two_stage'``; ``ValueError`` for a model the
    exporter does not cover (names what it found)."""
    name = type(model).__name__
    if hasattr(model, 'encode_decode') and hasattr(model, 'decode_head'):
        if name != 'EncoderDecoder':
            raise ValueError(f'{name} segmenters are not supported for export '
                             '(only EncoderDecoder)')
        return 'segmenter'
    if hasattr(model, 'roi_head') and hasattr(model, 'rpn_head'):
        roi_head = model.roi_head
        if type(roi_head).__name__ != 'StandardRoIHead':
            raise ValueError(f'{name} with {type(roi_head).__name__} is not supported for '
                             'export (two-stage detectors: StandardRoIHead only, e.g. Mask '
                             'R-CNN, Faster R-CNN)')
        return 'two_stage'
    if hasattr(model, 'bbox_head') and hasattr(model.bbox_head, 'prior_generator'):
        head = type(model.bbox_head).__name__
        if head not in ('RetinaHead', ):
            raise ValueError(f'{name} with {head} is not supported for export (one-stage '
                             'detectors: RetinaHead only)')
        return 'one_stage'
    raise ValueError(f'{name} is not supported for export: expected an mmseg EncoderDecoder, a '
                     'RetinaNet or a two-stage detector with StandardRoIHead')


def roi_heads(model: nn.Module) -> Dict[str, Tuple[RoIHeadGraph, Dict[str, object]]]:
    """The RoI heads of a two-stage detector as graphs, with what post-processing needs of their
    RoI extractors (output size, sampling ratio, strides, finest scale)."""
    heads = {}
    roi_head = model.roi_head
    for kind in ('bbox', 'mask'):
        if not getattr(roi_head, f'with_{kind}'):
            continue
        extractor = getattr(roi_head, f'{kind}_roi_extractor')
        if type(extractor).__name__ != 'SingleRoIExtractor':
            raise ValueError(f'{type(extractor).__name__} is not supported for export')
        layer = extractor.roi_layers[0]
        aligned = bool(getattr(layer, 'aligned', True))
        pool_mode = getattr(layer, 'pool_mode', 'avg')
        if pool_mode != 'avg':
            raise ValueError(f'RoIAlign pool_mode {pool_mode!r} is not supported for export')
        heads[kind] = (RoIHeadGraph(getattr(roi_head, f'{kind}_head'), kind),
                       dict(output_size=list(_pair(layer.output_size)),
                            sampling_ratio=int(layer.sampling_ratio), aligned=aligned,
                            strides=[int(s) for s in extractor.featmap_strides],
                            finest_scale=int(extractor.finest_scale)))
    return heads


def _pair(size) -> Sequence[int]:
    return (size, size) if isinstance(size, int) else tuple(int(s) for s in size)
