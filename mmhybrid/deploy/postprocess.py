"""From an exported detector's raw head outputs to boxes (and masks), in numpy.

The steps mmdet 3.x runs after the network, written out so that a served model needs neither
PyTorch nor mmdet: anchors, box decoding (``DeltaXYWHBBoxCoder``), score filtering and top-k,
NMS (mmcv's ``nms``/``batched_nms``), for Mask R-CNN-like detectors the RPN proposals, the
mapping of RoIs to pyramid levels and RoIAlign (onnxruntime's ``RoiAlign``, which computes
mmcv's aligned RoIAlign), the box head's per-class decoding and ``multiclass_nms``, and the
pasting of the 28x28 masks into the image (``grid_sample``'s bilinear sampling). Everything
is float32 as in mmdet, so the results equal ``model.predict`` up to float rounding.

Inputs are the outputs of the ONNX files in the order of their ``output_names`` (batch 1) and
the settings stored in the file's metadata (:func:`mmhybrid.deploy.export.read_metadata`).
"""
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

Array = np.ndarray
WH_RATIO_CLIP = 16 / 1000  # DeltaXYWHBBoxCoder.decode's default


def sigmoid(x: Array) -> Array:
    return (1 / (1 + np.exp(-x.astype(np.float64)))).astype(np.float32)


def softmax(x: Array, axis: int = -1) -> Array:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)


def grid_anchors(base_anchors: Array, stride: Sequence[int], height: int, width: int) -> Array:
    """``(H * W * A, 4)`` anchors of one level, ordered as the head's outputs (row, column,
    anchor), as mmdet's ``AnchorGenerator.single_level_grid_priors``."""
    shift_x = np.arange(width, dtype=np.float32) * np.float32(stride[0])
    shift_y = np.arange(height, dtype=np.float32) * np.float32(stride[1])
    xx = np.tile(shift_x, height)
    yy = np.repeat(shift_y, width)
    shifts = np.stack([xx, yy, xx, yy], axis=-1)
    return (np.asarray(base_anchors, np.float32)[None] + shifts[:, None]).reshape(-1, 4)


def decode_boxes(priors: Array, deltas: Array, coder: Dict[str, Any],
                 max_shape: Optional[Tuple[int, int]]) -> Array:
    """``DeltaXYWHBBoxCoder.decode``: ``priors (N, 4)``, ``deltas (N, 4k)`` → ``(N, 4k)``."""
    num, classes = deltas.shape[0], deltas.shape[1] // 4
    deltas = deltas.reshape(-1, 4).astype(np.float32)
    deltas = deltas * np.asarray(coder['stds'], np.float32) + np.asarray(coder['means'],
                                                                         np.float32)
    dxy, dwh = deltas[:, :2], deltas[:, 2:]
    rois = np.repeat(priors.astype(np.float32), classes, axis=0)
    pxy = (rois[:, :2] + rois[:, 2:]) * np.float32(0.5)
    pwh = rois[:, 2:] - rois[:, :2]
    dxy_wh = pwh * dxy
    max_ratio = np.float32(abs(np.log(WH_RATIO_CLIP)))
    if coder.get('add_ctr_clamp'):
        clamp = np.float32(coder['ctr_clamp'])
        dxy_wh = np.clip(dxy_wh, -clamp, clamp)
        dwh = np.minimum(dwh, max_ratio)
    else:
        dwh = np.clip(dwh, -max_ratio, max_ratio)
    gxy = pxy + dxy_wh
    gwh = pwh * np.exp(dwh)
    boxes = np.concatenate([gxy - gwh * np.float32(0.5), gxy + gwh * np.float32(0.5)], axis=-1)
    if coder.get('clip_border', True) and max_shape is not None:
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, max_shape[1])
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, max_shape[0])
    return boxes.reshape(num, -1)


def nms(boxes: Array, scores: Array, iou_threshold: float) -> Array:
    """mmcv's ``nms`` (offset 0): kept indices, highest score first."""
    order = np.argsort(-scores, kind='stable')
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    areas = (x2 - x1) * (y2 - y1)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(np.float32(0), np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(np.float32(0), np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[~(iou > np.float32(iou_threshold))]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(boxes: Array, scores: Array, idxs: Array, nms_cfg: Dict[str, Any]) -> Array:
    """mmcv's ``batched_nms``: NMS within each ``idxs`` value; kept indices by score."""
    cfg = dict(nms_cfg)
    if cfg.pop('type', 'nms') != 'nms':
        raise ValueError(f'NMS type {nms_cfg.get("type")!r} is not supported')
    iou = float(cfg.pop('iou_threshold'))
    if cfg.pop('class_agnostic', False):
        shifted = boxes
    else:
        offsets = idxs.astype(np.float32) * (boxes.max() + np.float32(1))
        shifted = boxes + offsets[:, None]
    if boxes.shape[0] < cfg.pop('split_thr', 10000):
        return nms(shifted, scores, iou)
    kept = np.zeros(boxes.shape[0], dtype=bool)
    for value in np.unique(idxs):
        members = np.nonzero(idxs == value)[0]
        kept[members[nms(shifted[members], scores[members], iou)]] = True
    keep = np.nonzero(kept)[0]
    return keep[np.argsort(-scores[keep], kind='stable')]


def _filter_small(boxes: Array, cfg: Dict[str, Any]) -> Array:
    """Indices kept by ``min_bbox_size`` (all when the setting is absent or negative)."""
    size = cfg.get('min_bbox_size', -1)
    if size < 0:
        return np.arange(boxes.shape[0])
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return np.nonzero((w > size) & (h > size))[0]


def _per_level(cls_maps: Sequence[Array], box_maps: Sequence[Array], anchors: Dict[str, Any],
               num_out: int):
    """Per level: ``(scores logits (HWA, num_out), deltas (HWA, 4), priors (HWA, 4))``."""
    for level, (cls, box) in enumerate(zip(cls_maps, box_maps)):
        height, width = cls.shape[-2:]
        yield (cls[0].transpose(1, 2, 0).reshape(-1, num_out),
               box[0].transpose(1, 2, 0).reshape(-1, 4),
               grid_anchors(anchors['base_anchors'][level], anchors['strides'][level], height,
                            width))


def _rescale(boxes: Array, scale_factor: Sequence[float]) -> Array:
    sx, sy = (np.float32(1 / s) for s in scale_factor)
    return boxes * np.array([sx, sy, sx, sy], dtype=np.float32)


def dense_head_predict(outputs: Sequence[Array], meta: Dict[str, Any],
                       img_shape: Tuple[int, int],
                       scale_factor: Sequence[float] = (1., 1.)) -> Dict[str, Array]:
    """RetinaNet-style outputs (``cls_score_i`` then ``bbox_pred_i``) → ``bboxes`` (in the
    original image: divided by ``scale_factor``), ``scores``, ``labels``; as
    ``BaseDenseHead.predict_by_feat`` with ``rescale=True``."""
    cfg = meta['test_cfg']
    levels = len(outputs) // 2
    num_classes = meta['num_classes']
    num_out = num_classes if meta['use_sigmoid'] else num_classes + 1
    score_thr, nms_pre = cfg.get('score_thr', 0), cfg.get('nms_pre', -1)
    all_deltas, all_priors, all_scores, all_labels = [], [], [], []
    for logits, deltas, priors in _per_level(outputs[:levels], outputs[levels:],
                                             meta['anchors'], num_out):
        scores = sigmoid(logits) if meta['use_sigmoid'] else softmax(logits)[:, :-1]
        rows, cols = np.nonzero(scores > score_thr)
        flat = scores[rows, cols]
        order = np.argsort(-flat, kind='stable')[:min(nms_pre, flat.size)
                                                 if nms_pre > 0 else flat.size]
        all_scores.append(flat[order])
        all_labels.append(cols[order])
        all_deltas.append(deltas[rows[order]])
        all_priors.append(priors[rows[order]])
    boxes = decode_boxes(np.concatenate(all_priors), np.concatenate(all_deltas), meta['coder'],
                         img_shape)
    scores, labels = np.concatenate(all_scores), np.concatenate(all_labels)
    boxes = _rescale(boxes, scale_factor)
    keep = _filter_small(boxes, cfg)
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    if boxes.size:
        keep = batched_nms(boxes, scores, labels, cfg['nms'])[:cfg['max_per_img']]
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    return dict(bboxes=boxes, scores=scores, labels=labels)


def rpn_proposals(cls_maps: Sequence[Array], box_maps: Sequence[Array], meta: Dict[str, Any],
                  img_shape: Tuple[int, int]) -> Array:
    """The RPN's proposals ``(N, 4)`` in the network input, as ``RPNHead.predict_by_feat``."""
    cfg = meta['test_cfg']
    nms_pre = cfg.get('nms_pre', -1)
    all_deltas, all_priors, all_scores, all_levels = [], [], [], []
    for level, (logits, deltas, priors) in enumerate(
            _per_level(cls_maps, box_maps, meta['anchors'], 1 if meta['use_sigmoid'] else 2)):
        scores = sigmoid(logits)[:, 0] if meta['use_sigmoid'] else softmax(logits)[:, 0]
        if 0 < nms_pre < scores.shape[0]:
            order = np.argsort(-scores, kind='stable')[:nms_pre]
            scores, deltas, priors = scores[order], deltas[order], priors[order]
        all_scores.append(scores)
        all_deltas.append(deltas)
        all_priors.append(priors)
        all_levels.append(np.full(scores.shape[0], level, dtype=np.int64))
    boxes = decode_boxes(np.concatenate(all_priors), np.concatenate(all_deltas), meta['coder'],
                         img_shape)
    scores, levels = np.concatenate(all_scores), np.concatenate(all_levels)
    keep = _filter_small(boxes, cfg)
    boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
    if not boxes.size:
        return boxes.reshape(0, 4)
    keep = batched_nms(boxes, scores, levels, cfg['nms'])[:cfg['max_per_img']]
    return boxes[keep]


class RoIAlign:
    """mmcv's RoIAlign (``aligned=True``, average) on one pyramid level, computed by
    onnxruntime's ``RoiAlign`` (coordinate mode ``half_pixel``)."""

    def __init__(self, output_size: Sequence[int], sampling_ratio: int, aligned: bool,
                 spatial_scale: float) -> None:
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper
        node = helper.make_node(
            'RoiAlign', ['x', 'rois', 'batch_indices'], ['y'], mode='avg',
            output_height=int(output_size[0]), output_width=int(output_size[1]),
            sampling_ratio=int(sampling_ratio), spatial_scale=float(spatial_scale),
            coordinate_transformation_mode='half_pixel' if aligned else 'output_half_pixel')
        graph = helper.make_graph(
            [node], 'roi_align',
            [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, None, None, None]),
             helper.make_tensor_value_info('rois', TensorProto.FLOAT, [None, 4]),
             helper.make_tensor_value_info('batch_indices', TensorProto.INT64, [None])],
            [helper.make_tensor_value_info('y', TensorProto.FLOAT, None)])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 16)])
        self.session = ort.InferenceSession(model.SerializeToString(),
                                            providers=['CPUExecutionProvider'])

    def __call__(self, feat: Array, rois: Array) -> Array:
        return self.session.run(None, dict(x=feat, rois=rois.astype(np.float32),
                                           batch_indices=np.zeros(len(rois), np.int64)))[0]


def map_roi_levels(rois: Array, num_levels: int, finest_scale: int) -> Array:
    """``SingleRoIExtractor.map_roi_levels``: the pyramid level of each ``(N, 4)`` box."""
    scale = np.sqrt((rois[:, 2] - rois[:, 0]) * (rois[:, 3] - rois[:, 1]))
    levels = np.floor(np.log2(scale / np.float32(finest_scale) + np.float32(1e-6)))
    return np.clip(levels, 0, num_levels - 1).astype(np.int64)


def extract_roi_feats(feats: Sequence[Array], rois: Array, extractor: Dict[str, Any],
                      aligners: Sequence[RoIAlign]) -> Array:
    """``SingleRoIExtractor``: RoIAlign of each box on its level → ``(N, C, S, S)``."""
    out = np.zeros((len(rois), feats[0].shape[1], *extractor['output_size']), np.float32)
    levels = map_roi_levels(rois, len(aligners), extractor['finest_scale'])
    for level, align in enumerate(aligners):
        members = np.nonzero(levels == level)[0]
        if members.size:
            out[members] = align(feats[level], rois[members])
    return out


def multiclass_nms(boxes: Array, scores: Array, score_thr: float, nms_cfg: Dict[str, Any],
                   max_num: int) -> Tuple[Array, Array, Array]:
    """mmdet's ``multiclass_nms``: ``boxes (N, 4k)``, ``scores (N, C + 1)``."""
    num_classes = scores.shape[1] - 1
    if boxes.shape[1] > 4:
        boxes = boxes.reshape(scores.shape[0], -1, 4)
    else:
        boxes = np.broadcast_to(boxes[:, None], (scores.shape[0], num_classes, 4))
    labels = np.broadcast_to(np.arange(num_classes)[None], (scores.shape[0], num_classes))
    boxes, labels = boxes.reshape(-1, 4), labels.reshape(-1)
    scores = scores[:, :-1].reshape(-1)
    valid = np.nonzero(scores > score_thr)[0]
    boxes, scores, labels = boxes[valid], scores[valid], labels[valid]
    if not boxes.size:
        return boxes.reshape(0, 4), scores, labels
    keep = batched_nms(boxes, scores, labels, nms_cfg)
    if max_num > 0:
        keep = keep[:max_num]
    return boxes[keep], scores[keep], labels[keep]


def paste_masks(masks: Array, boxes: Array, height: int, width: int,
                threshold: float) -> Array:
    """``_do_paste_mask`` (CPU path, one box at a time): ``(N, M, M)`` probabilities into
    ``(N, H, W)`` booleans, bilinear as ``grid_sample(align_corners=False)`` with zeros
    outside."""
    out = np.zeros((len(masks), height, width), dtype=bool)
    size_y, size_x = masks.shape[1:]
    for n, (mask, (x0, y0, x1, y1)) in enumerate(zip(masks, boxes)):
        left = int(max(np.floor(x0) - 1, 0))
        top = int(max(np.floor(y0) - 1, 0))
        right = int(min(np.ceil(x1) + 1, width))
        bottom = int(min(np.ceil(y1) + 1, height))
        if right <= left or bottom <= top:
            continue
        gx = (np.arange(left, right, dtype=np.float32) + np.float32(0.5) - x0) / (x1 - x0) \
            * np.float32(2) - np.float32(1)
        gy = (np.arange(top, bottom, dtype=np.float32) + np.float32(0.5) - y0) / (y1 - y0) \
            * np.float32(2) - np.float32(1)
        wx = _bilinear_weights(gx, size_x)
        wy = _bilinear_weights(gy, size_y)
        out[n, top:bottom, left:right] = (wy @ mask.astype(np.float32) @ wx.T) >= threshold
    return out


def _bilinear_weights(grid: Array, size: int) -> Array:
    """``(len(grid), size)`` weights of grid_sample's bilinear sampling along one axis
    (``align_corners=False``, zero padding)."""
    pos = ((grid + np.float32(1)) * np.float32(size) - np.float32(1)) / np.float32(2)
    low = np.floor(pos)
    frac = (pos - low).astype(np.float32)
    low = low.astype(np.int64)
    weights = np.zeros((len(grid), size), dtype=np.float32)
    rows = np.arange(len(grid))
    for index, weight in ((low, np.float32(1) - frac), (low + 1, frac)):
        inside = (index >= 0) & (index < size)
        weights[rows[inside], index[inside]] += weight[inside]
    return weights


def two_stage_predict(outputs: Sequence[Array], meta: Dict[str, Any],
                      run_head: Callable[[str, Array], List[Array]],
                      img_shape: Tuple[int, int],
                      scale_factor: Sequence[float] = (1., 1.),
                      ori_shape: Optional[Tuple[int, int]] = None,
                      aligners: Optional[Dict[str, List[RoIAlign]]] = None) -> Dict[str, Array]:
    """Mask R-CNN-style outputs (``feat_i``, ``rpn_cls_i``, ``rpn_bbox_i``) → ``bboxes``,
    ``scores``, ``labels`` (and ``masks`` of ``ori_shape``) in the original image, as
    ``TwoStageDetector.predict(rescale=True)``.

    Args:
        run_head: ``run_head(kind, roi_feats)`` runs the exported ``'bbox'`` or ``'mask'`` head
            file and returns its outputs.
        aligners: RoIAlign per head kind and level (:func:`make_aligners`; built when None).
    """
    heads = meta['roi_heads']
    num_feats = len(heads['bbox']['strides'])
    levels = (len(outputs) - num_feats) // 2
    feats = outputs[:num_feats]
    rpn_cls = outputs[num_feats:num_feats + levels]
    rpn_box = outputs[num_feats + levels:]
    aligners = aligners or make_aligners(meta)
    rcnn = meta['rcnn']
    cfg = rcnn['test_cfg']
    proposals = rpn_proposals(rpn_cls, rpn_box, meta['rpn'], img_shape)
    num_classes = meta['num_classes']
    empty = dict(bboxes=np.zeros((0, 4), np.float32), scores=np.zeros(0, np.float32),
                 labels=np.zeros(0, np.int64))
    if 'mask' in heads:
        ori_h, ori_w = ori_shape or img_shape
        empty['masks'] = np.zeros((0, ori_h, ori_w), bool)
    if not len(proposals):
        return empty
    roi_feats = extract_roi_feats(feats, proposals, heads['bbox'], aligners['bbox'])
    cls_score, bbox_pred = run_head('bbox', roi_feats)[:2]
    scores = softmax(cls_score)
    boxes = decode_boxes(proposals, bbox_pred, rcnn['coder'], img_shape)
    boxes, scores, labels = multiclass_nms(boxes, scores, cfg['score_thr'], cfg['nms'],
                                           cfg['max_per_img'])
    if not len(boxes):
        return empty
    if 'mask' not in heads:
        return dict(bboxes=_rescale(boxes, scale_factor), scores=scores, labels=labels)
    # With a mask head, mmdet rescales the boxes in the mask head (dividing by the factor).
    sx, sy = (np.float32(s) for s in scale_factor)
    result = dict(bboxes=boxes / np.array([sx, sy, sx, sy], np.float32), scores=scores,
                  labels=labels)
    if 'mask' in heads:
        # The mask head reads the boxes in the network input, before rescaling.
        mask_feats = extract_roi_feats(feats, boxes, heads['mask'], aligners['mask'])
        masks = sigmoid(run_head('mask', mask_feats)[0])
        if not rcnn['mask_class_agnostic']:
            masks = masks[np.arange(len(masks)), labels]
        else:
            masks = masks[:, 0]
        ori_h, ori_w = ori_shape or img_shape
        result['masks'] = paste_masks(masks, result['bboxes'], ori_h, ori_w,
                                      cfg.get('mask_thr_binary', 0.5))
    return result


def make_aligners(meta: Dict[str, Any]) -> Dict[str, List[RoIAlign]]:
    """RoIAlign of each RoI head kind and pyramid level of an exported two-stage detector."""
    return {kind: [RoIAlign(head['output_size'], head['sampling_ratio'], head['aligned'],
                            1 / stride) for stride in head['strides']]
            for kind, head in meta['roi_heads'].items()}
