"""ONNX export of a config's segmenter or detector (``tools/deploy/export_onnx.py``).

:func:`export_onnx` builds the config's model, loads the checkpoint with every key placed,
exports the graphs of :mod:`mmhybrid.deploy.graphs` with PyTorch's own exporter
(``torch.onnx.export(dynamo=True)``), height and width dynamic, then runs each file in
onnxruntime at the trace size and at a second size and compares it with PyTorch. Files are
written next to their destination under temporary names and renamed only once every check
passed: on any failure nothing is left behind.

What a served model needs besides the tensors (normalisation, classes, palette, anchors, the
heads' test settings, the minimum input size, the companion head files) is stored in the
ONNX file's metadata as JSON (key ``mmhybrid``), read by :mod:`mmhybrid.deploy.runtime`.
"""
import json
import os
import os.path as osp
import tempfile
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config

from ..checkpoint import (CheckpointLoadError, CheckpointMismatchError, load_foreign_checkpoint,
                          unwrap_state_dict)
from ..models.loading import compare_state_dict
from ..utils.build import build_config_model
from .graphs import (DenseHeadGraph, SegmenterGraph, TwoStageGraph, graph_kind, make_exportable,
                     roi_heads)

DEFAULT_OPSET = 18
METADATA_KEY = 'mmhybrid'
# Relative tolerance of the onnxruntime check (max |onnx - torch| / max |torch|, per output).
CHECK_RTOL = 1e-4


class ExportError(ValueError):
    """The config, checkpoint or size cannot be exported (the message names why)."""


class ExportFailedError(ExportError):
    """The exporter failed on a valid input, or onnxruntime's outputs differ from PyTorch's."""


@dataclass
class ExportResult:
    files: List[str]
    kind: str
    checks: List[Dict[str, Any]] = field(default_factory=list)
    metadata: Dict[str, Any] = field(default_factory=dict)


def build_model(config: str, cfg_options: Optional[dict] = None) -> Tuple[nn.Module, Config]:
    """The config's model in eval mode with random weights (no pretrained file is read)."""
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.model.pop('pretrained', None)
    try:
        model = build_config_model(cfg)
    except ValueError as error:
        raise ExportError(f'{config}: {error}') from error
    return model.eval(), cfg


def load_weights(model: nn.Module, checkpoint: str) -> Dict[str, Any]:
    """Loads ``checkpoint`` (an mmengine checkpoint of this model) with every key placed;
    returns its ``meta`` (``{}`` when absent).

    Raises:
        ExportError: The file's keys or shapes do not fit the model (names them).
    """
    try:
        raw = load_foreign_checkpoint(checkpoint)
        state_dict = unwrap_state_dict(raw)
    except CheckpointLoadError as error:
        raise ExportError(str(error)) from error
    comparison = compare_state_dict(state_dict, model)
    if not comparison.fits:
        raise ExportError(f'{checkpoint} does not match the config\'s model: '
                          f'{comparison.problems()}')
    model.load_state_dict(state_dict, strict=True)
    meta = raw.get('meta', {}) if isinstance(raw, dict) else {}
    return meta if isinstance(meta, dict) else {}


def min_input_size(model: nn.Module) -> int:
    """The smallest height/width one exported graph serves: the backbone's
    ``min_export_size`` (branches taken for smaller maps are not in the graph), at least 32."""
    return max(32, int(getattr(model.backbone, 'min_export_size', 32)))


def _dataset_meta(cfg: Config, checkpoint_meta: Dict[str, Any]) -> Dict[str, Any]:
    meta = dict(checkpoint_meta.get('dataset_meta') or {})
    if not meta:
        for split in ('test_dataloader', 'val_dataloader'):
            dataset = cfg.get(split, {}).get('dataset', {}) if cfg.get(split) else {}
            if dataset.get('metainfo'):
                meta = dict(dataset['metainfo'])
                break
    out = {}
    if meta.get('classes') is not None:
        out['classes'] = list(meta['classes'])
    if meta.get('palette') is not None:
        out['palette'] = [list(map(int, c)) for c in meta['palette']]
    return out


def _plain(value: Any) -> Any:
    """A JSON-able copy of a config value."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.generic, )):
        return value.item()
    return value


def _coder(coder: nn.Module) -> Dict[str, Any]:
    name = type(coder).__name__
    if name != 'DeltaXYWHBBoxCoder':
        raise ExportError(f'box coder {name} is not supported for export')
    return dict(means=[float(m) for m in coder.means], stds=[float(s) for s in coder.stds],
                clip_border=bool(coder.clip_border), add_ctr_clamp=bool(coder.add_ctr_clamp),
                ctr_clamp=int(coder.ctr_clamp))


def _anchors(head: nn.Module) -> Dict[str, Any]:
    generator = head.prior_generator
    if type(generator).__name__ != 'AnchorGenerator':
        raise ExportError(f'prior generator {type(generator).__name__} is not supported')
    return dict(strides=[[int(s) for s in stride] for stride in generator.strides],
                base_anchors=[b.tolist() for b in generator.base_anchors])


def _detector_metadata(model: nn.Module, kind: str) -> Dict[str, Any]:
    if kind == 'one_stage':
        head = model.bbox_head
        return dict(num_classes=int(head.num_classes), use_sigmoid=bool(head.use_sigmoid_cls),
                    anchors=_anchors(head), coder=_coder(head.bbox_coder),
                    test_cfg=_plain(dict(model.test_cfg)))
    rpn = model.rpn_head
    roi = model.roi_head
    return dict(num_classes=int(roi.bbox_head.num_classes),
                rpn=dict(anchors=_anchors(rpn), coder=_coder(rpn.bbox_coder),
                         use_sigmoid=bool(rpn.use_sigmoid_cls),
                         test_cfg=_plain(dict(model.test_cfg.rpn))),
                rcnn=dict(coder=_coder(roi.bbox_head.bbox_coder),
                          reg_class_agnostic=bool(roi.bbox_head.reg_class_agnostic),
                          mask_class_agnostic=bool(getattr(roi.mask_head, 'class_agnostic',
                                                           False)) if roi.with_mask else None,
                          test_cfg=_plain(dict(model.test_cfg.rcnn))))


def _check_size(shape: Sequence[int], minimum: int, what: str) -> Tuple[int, int]:
    height, width = (int(s) for s in shape)
    if min(height, width) < minimum:
        raise ExportError(f'{what} {height}x{width} is below this model\'s minimum input size '
                          f'{minimum}x{minimum} (the exported graph does not hold the branches '
                          'the backbone takes for smaller maps)')
    return height, width


def _export_graph(graph: nn.Module, args: Tuple[torch.Tensor, ...], dynamic: Dict[str, Any],
                  path: str, opset: int) -> None:
    input_names = list(dynamic)
    # Inference graph: no autograd (the training-only attention backward stays out of it).
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter('ignore')
        program = torch.export.export(graph, args,
                                      dynamic_shapes={k: v for k, v in dynamic.items()},
                                      strict=False)
        onnx_program = torch.onnx.export(program, dynamo=True, opset_version=opset,
                                         input_names=input_names,
                                         output_names=list(graph.output_names),
                                         verbose=False)
    onnx_program.save(path)


def _compare(path: str, session, graph: nn.Module,
             feeds: Dict[str, torch.Tensor]) -> Dict[str, Any]:
    outputs = session.run(None, {k: v.numpy() for k, v in feeds.items()})
    with torch.no_grad():
        expected = graph(*feeds.values())
    expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
    worst = 0.0
    for name, got, ref in zip(graph.output_names, outputs, expected):
        ref = ref.numpy()
        if got.shape != ref.shape:
            raise ExportFailedError(f'{osp.basename(path)}: output {name} has shape '
                                    f'{got.shape} in onnxruntime but {ref.shape} in PyTorch')
        scale = max(float(np.abs(ref).max()), 1e-12) if ref.size else 1.0
        err = float(np.abs(got - ref).max()) / scale if ref.size else 0.0
        worst = max(worst, err)
    shape = tuple(next(iter(feeds.values())).shape)
    if worst > CHECK_RTOL:
        raise ExportFailedError(f'{osp.basename(path)}: onnxruntime differs from PyTorch at '
                                f'input {shape} by {worst:.2e} (relative; limit {CHECK_RTOL:g})')
    return dict(input=list(shape), max_rel_error=worst)


def _second_size(height: int, width: int, minimum: int) -> Tuple[int, int]:
    """An odd size other than the trace size, at least the minimum, for the check."""
    return max(minimum, height * 3 // 4) | 1, max(minimum, width * 5 // 4 + 1) | 1


def head_file(out: str, kind: str) -> str:
    """The companion file of a two-stage detector's ``kind`` ('bbox'/'mask') head."""
    root, ext = osp.splitext(out)
    return f'{root}.{kind}_head{ext or ".onnx"}'


def export_onnx(config: str,
                checkpoint: str,
                out: str,
                shape: Sequence[int] = (512, 512),
                dynamic: bool = True,
                opset: int = DEFAULT_OPSET,
                check: bool = True,
                overwrite: bool = False,
                cfg_options: Optional[dict] = None,
                switch_to_deploy: bool = False) -> ExportResult:
    """Exports the model of ``config`` with the weights of ``checkpoint`` to ``out``.

    Args:
        config: An mmseg segmenter (EncoderDecoder) or mmdet RetinaNet / two-stage detector
            config of this package.
        checkpoint: An mmengine checkpoint of that model (every key must fit).
        out: The ``.onnx`` file to write (two-stage detectors also write
            ``<out>.bbox_head.onnx`` and ``<out>.mask_head.onnx`` beside it).
        shape: ``(H, W)`` of the trace; with ``dynamic`` the file serves any size at least the
            model's minimum, else only this one.
        opset: ONNX opset (at least 17).
        check: Run each file in onnxruntime at ``shape`` (and a second size when dynamic)
            and compare with PyTorch.
        overwrite: Replace existing output files.
        switch_to_deploy: Fold the backbone for inference before the trace
            (``HybridBackbone.switch_to_deploy``: BatchNorms, layer scales and depth-wise
            residuals in the conv weights; the same outputs up to rounding).

    Raises:
        ExportError: Unsupported model, checkpoint that does not fit, size below the minimum,
            failed check, or an output that exists (without ``overwrite``).
    """
    if opset < 17:
        raise ExportError(f'opset {opset} is too old: use 17 or newer')
    try:
        model, cfg = build_model(config, cfg_options)
        kind = graph_kind(model)
    except (ValueError, KeyError) as error:
        raise ExportError(f'{config}: {error}') from error
    try:
        checkpoint_meta = load_weights(model, checkpoint)
    except CheckpointMismatchError as error:
        raise ExportError(str(error)) from error
    if switch_to_deploy:
        if not callable(getattr(model.backbone, 'switch_to_deploy', None)):
            raise ExportError(f'{config}: the {type(model.backbone).__name__} backbone has no '
                              f'switch_to_deploy()')
        model.backbone.switch_to_deploy()
    minimum = min_input_size(model)
    height, width = _check_size(shape, minimum, 'trace size')
    make_exportable(model)

    graphs: List[Tuple[str, nn.Module, Dict[str, Any], Tuple[torch.Tensor, ...]]] = []
    image = torch.rand(1, 3, height, width) * 255
    hw = {2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC} if dynamic else {}
    metadata: Dict[str, Any] = dict(
        kind=kind, config=osp.basename(config), opset=opset, dynamic=dynamic,
        switch_to_deploy=bool(switch_to_deploy),
        input_shape=None if dynamic else [height, width], min_size=minimum,
        dataset_meta=_dataset_meta(cfg, checkpoint_meta))
    try:
        if kind == 'segmenter':
            graph = SegmenterGraph(model)
            metadata['align_corners'] = bool(model.decode_head.align_corners)
        elif kind == 'one_stage':
            graph = DenseHeadGraph(model)
            metadata.update(_detector_metadata(model, kind))
        else:
            graph = TwoStageGraph(model)
            metadata.update(_detector_metadata(model, kind))
        metadata.update(mean=graph.mean.flatten().tolist(), std=graph.std.flatten().tolist(),
                        swap_channels=graph.swap_channels, pad_divisor=graph.pad_divisor,
                        output_names=list(graph.output_names))
        graphs.append((out, graph, {'image': hw}, (image, )))
        if kind == 'two_stage':
            with torch.no_grad():
                feats = graph(image)[:graph.num_feats]
            metadata['roi_heads'] = {}
            for head_kind, (head_graph, extractor) in roi_heads(model).items():
                size = extractor['output_size']
                roi_feats = torch.randn(3, feats[0].shape[1], *size)
                path = head_file(out, head_kind)
                graphs.append((path, head_graph, {'roi_feats': {0: torch.export.Dim.DYNAMIC}},
                               (roi_feats, )))
                metadata['roi_heads'][head_kind] = dict(
                    extractor, file=osp.basename(path),
                    output_names=list(head_graph.output_names))
    except ValueError as error:
        raise ExportError(f'{config}: {error}') from error

    files = [path for path, *_ in graphs]
    existing = [p for p in files if osp.exists(p)]
    if existing and not overwrite:
        raise ExportError(f'{", ".join(existing)} exists; pass --overwrite to replace it')
    result = ExportResult(files=files, kind=kind, metadata=metadata)
    temporary: List[Tuple[str, str]] = []
    try:
        for path, graph, dims, args in graphs:
            folder = osp.dirname(osp.abspath(path))
            os.makedirs(folder, exist_ok=True)
            handle, tmp = tempfile.mkstemp(prefix='.' + osp.basename(path) + '.', dir=folder)
            os.close(handle)
            temporary.append((tmp, path))
            _export_graph(graph, args, dims, tmp, opset)
            if path == out:
                _write_metadata(tmp, metadata)
            if check:
                import onnxruntime as ort
                session = ort.InferenceSession(tmp, providers=['CPUExecutionProvider'])
                inputs = [args[0]]
                if dynamic:
                    inputs.append(torch.rand(1, 3, *_second_size(height, width, minimum)) * 255
                                  if path == out else torch.randn(5, *args[0].shape[1:]))
                for value in inputs:
                    result.checks.append(dict(file=osp.basename(path), **_compare(
                        tmp, session, graph, dict(zip(dims, (value, ))))))
        for tmp, path in temporary:
            os.replace(tmp, path)
        temporary = []
    except ExportError:
        raise
    except Exception as error:  # the exporter's own errors: say which graph failed
        raise ExportFailedError(f'exporting {config} failed: {type(error).__name__}: '
                          f'{str(error).splitlines()[0] if str(error) else ""}') from error
    finally:
        for tmp, _ in temporary:
            for leftover in (tmp, tmp + '.data'):
                if osp.exists(leftover):
                    os.remove(leftover)
    return result


def _write_metadata(path: str, metadata: Dict[str, Any]) -> None:
    import onnx
    model = onnx.load(path)
    entry = model.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps(metadata)
    onnx.save(model, path)


def read_metadata(path: str) -> Dict[str, Any]:
    """The ``mmhybrid`` metadata of an exported file (``ValueError`` when it has none)."""
    import onnx
    model = onnx.load(path, load_external_data=False)
    for entry in model.metadata_props:
        if entry.key == METADATA_KEY:
            return json.loads(entry.value)
    raise ValueError(f'{path} was not written by mmhybrid\'s exporter (no {METADATA_KEY!r} '
                     'metadata)')
