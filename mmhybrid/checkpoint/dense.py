"""Whole released detectors and segmenters: mmdet 2.x / mmseg 0.x training files → mmengine.

The authors' COCO and ADE20K files (docs/model_zoo.md lists them) hold ``state_dict`` (``backbone.*`` in the
official layout, ``neck.*``, ``rpn_head.*``, ``roi_head.*``, ``bbox_head.*``, ``decode_head.*``,
``auxiliary_head.*``), ``meta`` with ``CLASSES`` (and ``PALETTE`` for mmseg) and often
``optimizer`` / ``amp``. :func:`convert_dense_state_dict` converts the backbone part with the
family converter and maps every neck/head through :data:`HEADS`, the table of the heads we know;
:func:`convert_dense_checkpoint_file` drops the training state, writes an mmengine checkpoint
(``state_dict``, ``meta.dataset_meta``) atomically and, given a config, checks that the result
fits the config's model exactly (:func:`check_fits_model`), naming a mismatch in user terms
(head type, class count, cascade stages, backbone variant).

The parameter names of the heads in :data:`HEADS` did not change from mmdet 2.x to 3.x nor from
mmseg 0.x to 1.x (what changed is config-level), so their rename tables are empty; a head that
is not in the table is an error, never a silent pass.
"""
import os
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..models.loading import CheckpointMismatchError, compare_state_dict, summarize_keys
from .core import (ConversionReport, StateDict, check_destination, convert_checkpoint_file,
                   convert_state_dict, detect_family, matching_archs, rename_prefix,
                   save_checkpoint_object, strip_prefix, unwrap_state_dict)
from .safe_load import CheckpointLoadError, InertObject, load_foreign_checkpoint

Shapes = Mapping[str, Tuple[int, ...]]
# The parts of a detector/segmenter next to its backbone, in the order models declare them.
COMPONENTS = ('neck', 'rpn_head', 'roi_head', 'bbox_head', 'decode_head', 'auxiliary_head')
# Top-level entries of a training file that are not weights (dropped, and reported).
_KEPT_ENTRIES = ('state_dict', 'meta')

_WB = r'(weight|bias)'
# mmcv's ConvModule: ``conv`` and a BN/SyncBN (``bn``) or GroupNorm (``gn``).
_CONV_MODULE = r'(conv\.' + _WB + r'|(bn|gn)\.(weight|bias|running_mean|running_var|' \
    r'num_batches_tracked))'
_BBOX_HEAD = (r'(shared_convs\.\d+\.' + _CONV_MODULE + r'|shared_fcs\.\d+\.' + _WB +
              r'|fc_(cls|reg)\.' + _WB + ')')
_MASK_HEAD = r'(convs\.\d+\.' + _CONV_MODULE + r'|(upsample|conv_logits)\.' + _WB + ')'
_SEG_CLS = r'conv_seg\.' + _WB


def _outputs(shapes: Shapes, key: str) -> Optional[int]:
    return shapes[key][0] if key in shapes else None


def _bbox_classes(shapes: Shapes, prefix: str) -> Optional[Tuple[int, str]]:
    """Shared2FC / ConvFC bbox heads: ``fc_cls`` has ``num_classes + 1`` outputs (background)."""
    key = next((k for k in shapes if re.fullmatch(r'bbox_head(\.\d+)?\.fc_cls\.weight', k)),
               None)
    if key is None:
        return None
    out = shapes[key][0]
    return out - 1, f'{prefix}{key[:-len(".weight")]}: {out} outputs = classes + background'


def _retina_classes(shapes: Shapes, prefix: str) -> Optional[Tuple[int, str]]:
    """RetinaHead: ``retina_cls`` has anchors x classes outputs, ``retina_reg`` anchors x 4."""
    cls, reg = _outputs(shapes, 'retina_cls.weight'), _outputs(shapes, 'retina_reg.weight')
    if cls is None or not reg or reg % 4:
        return None
    anchors = reg // 4
    return cls // anchors, f'{prefix}retina_cls: {cls} outputs = {anchors} anchors x classes'


def _seg_classes(shapes: Shapes, prefix: str) -> Optional[Tuple[int, str]]:
    out = _outputs(shapes, 'conv_seg.weight')
    return None if out is None else (out, f'{prefix}conv_seg: {out} outputs')


@dataclass(frozen=True)
class HeadSpec:
    """A neck or head whose released parameter names we know.

    Attributes:
        name: Its type in mmdet 3.x / mmseg 1.x (``'UPerHead'``).
        component: The model attribute holding it (``'decode_head'``).
        marker: Regex one key (relative to ``component.``) matches: recognises the head.
        keys: Regex every key (relative to ``component.``) fully matches.
        renames: ``(mmdet 2.x / mmseg 0.x prefix, today's prefix)`` pairs, applied to the keys
            relative to ``component.``; empty where the names did not change.
        classes: ``(shapes relative to component., 'component.') -> (num_classes, evidence)``.
    """
    name: str
    component: str
    marker: str
    keys: str
    renames: Tuple[Tuple[str, str], ...] = ()
    classes: Optional[Callable[[Shapes, str], Optional[Tuple[int, str]]]] = None


HEADS: Tuple[HeadSpec, ...] = (
    HeadSpec('FPN', 'neck', r'^lateral_convs\.0\.conv\.weight$',
             r'(lateral_convs|fpn_convs)\.\d+\.' + _CONV_MODULE),
    HeadSpec('RPNHead', 'rpn_head', r'^rpn_conv\.weight$', r'rpn_(conv|cls|reg)\.' + _WB),
    # Shared2FCBBoxHead / ConvFCBBoxHead (Shared4Conv1FC) and FCNMaskHead; cascade stages are
    # numbered (``bbox_head.0.``).
    HeadSpec('CascadeRoIHead', 'roi_head', r'^bbox_head\.\d+\.',
             r'(bbox_head\.\d+\.' + _BBOX_HEAD + r'|mask_head\.\d+\.' + _MASK_HEAD + ')',
             classes=_bbox_classes),
    HeadSpec('StandardRoIHead', 'roi_head', r'^bbox_head\.(fc_cls|shared_fcs)\.',
             r'(bbox_head\.' + _BBOX_HEAD + r'|mask_head\.' + _MASK_HEAD + ')',
             classes=_bbox_classes),
    HeadSpec('RetinaHead', 'bbox_head', r'^retina_cls\.weight$',
             r'((cls|reg)_convs\.\d+\.' + _CONV_MODULE + r'|retina_(cls|reg)\.' + _WB + ')',
             classes=_retina_classes),
    HeadSpec('UPerHead', 'decode_head', r'^psp_modules\.',
             r'((psp_modules\.\d+\.1|bottleneck|lateral_convs\.\d+|fpn_convs\.\d+|'
             r'fpn_bottleneck)\.' + _CONV_MODULE + '|' + _SEG_CLS + ')', classes=_seg_classes),
    HeadSpec('FPNHead', 'decode_head', r'^scale_heads\.',
             r'(scale_heads\.\d+\.\d+\.' + _CONV_MODULE + '|' + _SEG_CLS + ')',
             classes=_seg_classes),
    HeadSpec('FCNHead', 'decode_head', r'^convs\.0\.', r'((convs\.\d+|conv_cat)\.' +
             _CONV_MODULE + '|' + _SEG_CLS + ')', classes=_seg_classes),
    HeadSpec('FCNHead', 'auxiliary_head', r'^convs\.0\.', r'((convs\.\d+|conv_cat)\.' +
             _CONV_MODULE + '|' + _SEG_CLS + ')', classes=_seg_classes),
)


def _known_heads(component: str) -> List[str]:
    return [spec.name for spec in HEADS if spec.component == component]


def split_components(state_dict: Mapping[str, Any]) -> 'OrderedDict[str, OrderedDict]':
    """``{'backbone': {...}, 'neck': {...}, ...}``: the keys of each top-level part, relative to
    it (``module.`` of a DDP-wrapped model removed)."""
    parts: 'OrderedDict[str, OrderedDict]' = OrderedDict()
    for key, value in state_dict.items():
        key = key[len('module.'):] if key.startswith('module.') else key
        top, _, rest = key.partition('.')
        parts.setdefault(top, OrderedDict())[rest] = value
    return parts


def is_dense_model(state_dict: Mapping[str, Any]) -> bool:
    """True for a whole detector/segmenter: a ``backbone`` next to a neck or a head."""
    parts = split_components(state_dict)
    return 'backbone' in parts and any(c in parts for c in COMPONENTS)


def identify_heads(parts: Mapping[str, Mapping[str, Any]],
                   source: str = 'the file') -> 'OrderedDict[str, HeadSpec]':
    """The :class:`HeadSpec` of every non-backbone part.

    Raises:
        CheckpointMismatchError: A part or a head we do not know, or keys a known head does not
            have; the message names them.
    """
    unknown = [c for c in parts if c != 'backbone' and c not in COMPONENTS]
    if unknown:
        raise CheckpointMismatchError(
            f'{source} has parts this converter does not know: '
            + ', '.join(f'{c}.* (e.g. {c}.{next(iter(parts[c]))})' for c in unknown)
            + f'; known: backbone, {", ".join(COMPONENTS)} (for a classifier file, '
            f'--backbone-only converts its backbone)')
    heads: 'OrderedDict[str, HeadSpec]' = OrderedDict()
    for component, keys in parts.items():
        if component == 'backbone':
            continue
        candidates = [s for s in HEADS if s.component == component
                      and any(re.search(s.marker, k) for k in keys)]
        for spec in candidates:
            strange = [k for k in keys if not re.fullmatch(spec.keys, k)]
            if not strange:
                heads[component] = spec
                break
        else:
            detail = (f'keys a {candidates[-1].name} does not have: '
                      f'{summarize_keys([f"{component}.{k}" for k in strange])}' if candidates
                      else f'keys like {summarize_keys([f"{component}.{k}" for k in keys])}')
            raise CheckpointMismatchError(
                f'{source}: {component} is not a head this converter knows ({detail}); '
                f'supported {component}: {", ".join(_known_heads(component))}')
    return heads


def describe(heads: Mapping[str, HeadSpec], shapes: Shapes) -> str:
    """The model a set of heads makes: ``'Mask R-CNN'``, ``'UPerNet'`` ..."""
    roi = heads.get('roi_head')
    if roi is not None:
        mask = any(k.startswith('roi_head.mask_head.') for k in shapes)
        cascade = roi.name == 'CascadeRoIHead'
        if cascade:
            return 'Cascade Mask R-CNN' if mask else 'Cascade R-CNN'
        return 'Mask R-CNN' if mask else 'Faster R-CNN'
    names = {'RetinaHead': 'RetinaNet', 'UPerHead': 'UPerNet', 'FPNHead': 'Semantic FPN',
             'FCNHead': 'FCN'}
    for component in ('bbox_head', 'decode_head'):
        if component in heads:
            return names.get(heads[component].name, heads[component].name)
    return 'a backbone and neck only'


def cascade_stages(shapes: Shapes) -> int:
    return len({m.group(1) for k in shapes
                if (m := re.match(r'^roi_head\.bbox_head\.(\d+)\.', k))})


def num_classes(heads: Mapping[str, HeadSpec], shapes: Shapes) -> List[Tuple[str, int, str]]:
    """``(component, num_classes, evidence)`` of every head with a classifier."""
    found = []
    for component, spec in heads.items():
        if spec.classes is None:
            continue
        prefix = component + '.'
        rel = {k[len(prefix):]: v for k, v in shapes.items() if k.startswith(prefix)}
        result = spec.classes(rel, prefix)
        if result is not None:
            found.append((component, *result))
    return found


@dataclass
class DenseReport:
    """What :func:`convert_dense_state_dict` / :func:`convert_dense_checkpoint_file` did."""
    backbone: ConversionReport
    heads: Dict[str, str] = field(default_factory=dict)  # component -> head type
    model: str = ''
    renamed_head_keys: int = 0
    dropped_entries: List[str] = field(default_factory=list)  # optimizer, amp, ...
    arch: Optional[str] = None  # the config's backbone arch, once checked against it
    classes: Optional[List[str]] = None
    palette_source: str = ''
    checked_against: Optional[str] = None

    def format(self) -> str:
        lines = [f'whole {self.model} file: backbone {self.backbone.family or "?"}'
                 f'{f" (arch {self.arch})" if self.arch else ""}; heads: '
                 + ', '.join(f'{c}={n}' for c, n in self.heads.items()),
                 f'backbone: renamed {self.backbone.renamed} keys'
                 + (f', dropped {summarize_keys(self.backbone.dropped)}'
                    if self.backbone.dropped else ''),
                 f'neck/heads: renamed {self.renamed_head_keys} keys (mmdet 2.x / mmseg 0.x '
                 f'names are today\'s for these heads)']
        if self.dropped_entries:
            lines.append(f'dropped training state: {", ".join(self.dropped_entries)}')
        if self.classes is not None:
            lines.append(f'dataset_meta: {len(self.classes)} classes, '
                         + ('palette ' if self.palette_source.startswith(('from', 'of')) else
                            'no palette') + self.palette_source)
        else:
            lines.append('dataset_meta: the file names no classes')
        if self.checked_against:
            lines.append(f'every key fits {self.checked_against}')
        return '\n'.join(lines)


def convert_dense_state_dict(state_dict: Mapping[str, torch.Tensor],
                             family: str = 'auto') -> Tuple[StateDict, DenseReport]:
    """Converts the state dict of a whole released detector/segmenter to today's names.

    ``backbone.*`` goes through the family converter (official layout → mmhybrid's), each
    neck/head through its :data:`HEADS` entry. Idempotent.

    Raises:
        CheckpointMismatchError: No backbone, an unknown part or head, or backbone keys the
            family converter does not understand.
    """
    parts = split_components(state_dict)
    if 'backbone' not in parts:
        raise CheckpointMismatchError(
            f'not a whole detector/segmenter: no key starts with "backbone." (parts: '
            f'{", ".join(parts)})')
    heads = identify_heads(parts)
    backbone, backbone_report = convert_state_dict(parts['backbone'], family)
    if backbone_report.unmatched:
        raise CheckpointMismatchError(
            f'backbone keys the {backbone_report.family} converter does not understand: '
            f'{summarize_keys(backbone_report.unmatched)}')
    out: StateDict = OrderedDict(('backbone.' + k, v) for k, v in backbone.items())
    report = DenseReport(backbone=backbone_report,
                         heads={c: s.name for c, s in heads.items()})
    for component, spec in heads.items():
        for key, value in parts[component].items():
            new_key = rename_prefix(key, spec.renames)
            report.renamed_head_keys += new_key != key
            out[f'{component}.{new_key}'] = value
    report.model = describe(heads, out)
    return out, report


def _shapes(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, Tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state_dict.items()}


def _model_heads(model_shapes: Shapes, model: nn.Module) -> Tuple['OrderedDict', str]:
    """The model's heads through the same table, and its description; a head outside the table
    is described by its class name."""
    try:
        heads = identify_heads(split_components(model_shapes), source='the config')
        return heads, describe(heads, model_shapes)
    except CheckpointMismatchError:
        parts = [c for c in split_components(model_shapes) if c != 'backbone']
        return OrderedDict(), '/'.join(type(getattr(model, c)).__name__ for c in parts
                                       if hasattr(model, c))


def _backbone_problem(file_shapes: Shapes, model: nn.Module) -> Optional[str]:
    backbone = getattr(model, 'backbone', None)
    if backbone is None:
        return None
    sd = {k[len('backbone.'):]: torch.empty(v, device='meta') for k, v in file_shapes.items()
          if k.startswith('backbone.')}
    comparison = compare_state_dict(sd, backbone)
    if comparison.fits and not comparison.new_keys:  # per-output norms count here
        return None
    name = type(backbone).__name__
    arch = getattr(backbone, 'arch_name', '?')
    family = detect_family(sd)
    if family is not None and family != getattr(backbone, 'family', family):
        return (f'backbone family: the file\'s backbone is {family}, the config\'s is '
                f'{name}(arch={arch!r})')
    details = []
    if comparison.mismatched:
        details.append(f'{len(comparison.mismatched)} backbone shapes differ, e.g. '
                       + '; '.join(comparison.mismatched[:3]))
    if comparison.unexpected:
        details.append(f'{len(comparison.unexpected)} backbone keys the config\'s backbone '
                       f'does not have: {summarize_keys(comparison.unexpected)}')
    if comparison.missing or comparison.new_keys:
        absent = comparison.missing + comparison.new_keys
        details.append(f'{len(absent)} keys of the config\'s backbone absent from the file: '
                       f'{summarize_keys(absent)}')
    matches = matching_archs(type(backbone), sd)
    hint = f'; the file\'s backbone is {name}(arch={matches[0]!r})' if matches else ''
    return (f'backbone variant: the file\'s backbone does not fit the config\'s '
            f'{name}(arch={arch!r}){hint}: ' + '; '.join(details))


def fit_problems(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> List[str]:
    """Why a converted whole-model state dict does not load exactly into ``model`` (empty when
    it does), in user terms first (head type, cascade stages, class count, backbone variant),
    then whatever key differences those do not explain."""
    comparison = compare_state_dict(state_dict, model)
    if comparison.fits:
        return []
    file_shapes = _shapes(state_dict)
    model_shapes = _shapes(model.state_dict())
    file_heads = identify_heads(split_components(file_shapes))
    model_heads, model_kind = _model_heads(model_shapes, model)
    file_kind = describe(file_heads, file_shapes)
    problems = []
    file_parts = [c for c in split_components(file_shapes) if c not in ('backbone', 'neck')]
    model_parts = [c for c in split_components(model_shapes) if c not in ('backbone', 'neck')]
    if file_parts != model_parts or file_kind != model_kind:
        problems.append(f'head type: file has {"/".join(file_parts)} ({file_kind}), config '
                        f'expects {"/".join(model_parts)} ({model_kind})')
    elif file_heads.get('roi_head') is not None and \
            file_heads['roi_head'].name == 'CascadeRoIHead':
        stages = cascade_stages(file_shapes), cascade_stages(model_shapes)
        if stages[0] != stages[1]:
            problems.append(f'cascade stages: file has {stages[0]} (roi_head.bbox_head.0-'
                            f'{stages[0] - 1}), config has {stages[1]}')
    model_classes = {c: (n, e) for c, n, e in num_classes(model_heads, model_shapes)}
    seen = set()
    for component, count, evidence in num_classes(file_heads, file_shapes):
        if component in model_classes and model_classes[component][0] != count:
            pair = (count, model_classes[component][0])
            if pair not in seen:
                seen.add(pair)
                problems.append(f'class count: file has {count} classes ({evidence}), config '
                                f'has {pair[1]} ({model_classes[component][1]})')
    backbone = _backbone_problem(file_shapes, model)
    if backbone:
        problems.append(backbone)
    problems.append(f'in all: {comparison.problems()}')
    return problems


def check_fits_model(state_dict: Mapping[str, torch.Tensor], model: nn.Module,
                     what: str = 'the model') -> None:
    """Raises :class:`CheckpointMismatchError` naming every problem of :func:`fit_problems`."""
    problems = fit_problems(state_dict, model)
    if problems:
        raise CheckpointMismatchError(f'the converted file does not fit {what}:\n  - '
                                      + '\n  - '.join(problems))


def dataset_meta(meta: Any, state_dict: Mapping[str, torch.Tensor],
                 report: DenseReport) -> Dict[str, Any]:
    """``{'classes': ..., 'palette': ...}`` from an mmdet 2.x / mmseg 0.x ``meta``
    (``CLASSES``, ``PALETTE``) or an mmengine one (``dataset_meta``).

    A file without a palette (mmdet 2.x) gets the palette of the mmdet/mmseg dataset with the
    very same class names, if there is one.

    Raises:
        CheckpointMismatchError: class names or palette are not lists of names / RGB triples.
    """
    meta = meta if isinstance(meta, Mapping) else {}
    mm = meta.get('dataset_meta') if isinstance(meta.get('dataset_meta'), Mapping) else {}
    classes = meta.get('CLASSES', mm.get('classes'))
    palette = meta.get('PALETTE', mm.get('palette'))
    if classes is None:
        return {}
    if isinstance(classes, str) or not isinstance(classes, Sequence) or \
            not all(isinstance(c, str) for c in classes):
        raise CheckpointMismatchError(f'meta CLASSES is not a list of class names: '
                                      f'{type(classes).__name__}')
    result: Dict[str, Any] = {'classes': tuple(classes)}
    report.classes = list(classes)
    unreadable = ''
    if isinstance(palette, InertObject):  # e.g. a pickled numpy array: not unpickled, on purpose
        unreadable = f' (the file\'s, a {palette._mmhybrid_global}, is not read)'
        palette = None
    if palette is not None:
        try:
            palette = [tuple(int(v) for v in color) for color in palette]
        except (TypeError, ValueError) as error:
            raise CheckpointMismatchError(f'meta PALETTE is not a list of RGB triples '
                                          f'({error})') from error
        if len(palette) != len(classes) or any(len(color) != 3 for color in palette):
            raise CheckpointMismatchError(f'meta PALETTE is not one RGB triple per class '
                                          f'({len(palette)} colours for {len(classes)} classes)')
        report.palette_source = 'from the file'
    else:
        palette = _dataset_palette(tuple(classes),
                                   'decode_head' in split_components(state_dict))
        report.palette_source = ('of the dataset with these class names'
                                 if palette is not None else '') + unreadable
    if palette is not None:
        result['palette'] = [list(color) for color in palette]
    return result


def _dataset_palette(classes: Tuple[str, ...], seg: bool) -> Optional[List[Tuple[int, ...]]]:
    try:
        if seg:
            from mmseg.datasets import ADE20KDataset, CityscapesDataset
            datasets = [ADE20KDataset, CityscapesDataset]
        else:
            from mmdet.datasets import CocoDataset
            datasets = [CocoDataset]
    except ImportError:
        return None
    for dataset in datasets:
        if tuple(dataset.METAINFO['classes']) == classes:
            return [tuple(c) for c in dataset.METAINFO['palette']]
    return None


@dataclass
class DenseConversion:
    """Result of :func:`convert_dense_checkpoint_file`."""
    report: DenseReport
    sha256: Optional[str]
    checkpoint: Dict[str, Any]


def convert_dense_checkpoint_file(src: str,
                                  dst: Optional[str],
                                  config: Optional[str] = None,
                                  cfg_options: Optional[Dict[str, Any]] = None,
                                  family: str = 'auto',
                                  overwrite: bool = False,
                                  loaded: Any = None) -> DenseConversion:
    """Converts a whole released detector/segmenter file to an mmengine checkpoint.

    ``dst`` gets ``{'state_dict', 'meta': {'dataset_meta': {'classes', 'palette'}, ...}}``,
    written atomically, never onto ``src`` and never over an existing file unless ``overwrite``
    (``dst=None`` only checks). With ``config``, the config's model is built on the meta device
    (``cfg_options`` merged) and the converted state dict must fit it exactly: nothing is
    written otherwise. ``loaded``: the object already read from ``src`` (not read again).

    Raises:
        CheckpointLoadError: ``src`` is unreadable.
        CheckpointMismatchError: an unknown head or backbone key, or a misfit with ``config``.
        FileExistsError: ``dst`` exists (without ``overwrite``) or is ``src``.
    """
    check_destination(src, dst, overwrite)
    obj = load_foreign_checkpoint(src) if loaded is None else loaded
    state_dict, _ = strip_prefix(unwrap_state_dict(obj), '')
    try:
        state_dict, report = convert_dense_state_dict(state_dict, family)
    except CheckpointMismatchError as error:
        raise CheckpointMismatchError(f'{src}: {error}') from error
    if isinstance(obj, Mapping):
        report.dropped_entries = [str(k) for k in obj if k not in _KEPT_ENTRIES]
    meta = obj.get('meta') if isinstance(obj, Mapping) else None
    meta = dataset_meta(meta, state_dict, report)
    if report.classes is not None:
        shapes = _shapes(state_dict)
        for _, count, evidence in num_classes(identify_heads(split_components(shapes)), shapes):
            if count != len(report.classes):
                raise CheckpointMismatchError(
                    f'{src}: meta CLASSES names {len(report.classes)} classes, but the head has '
                    f'{count} ({evidence})')
    checkpoint = {
        'meta': {
            'dataset_meta': meta,
            'converted_from': {'file': os.path.basename(src), 'model': report.model,
                               'backbone_family': report.backbone.family},
        },
        'state_dict': OrderedDict((k, v.contiguous()) for k, v in state_dict.items()),
    }
    if config is not None:
        from ..utils.build import build_config_model
        model = build_config_model(config, cfg_options, device='meta')
        check_fits_model(state_dict, model, what=f'the model of {config}')
        report.checked_against = f'the model of {config}'
        report.arch = getattr(getattr(model, 'backbone', None), 'arch_name', None)
    sha = save_checkpoint_object(checkpoint, dst) if dst is not None else None
    return DenseConversion(report, sha, checkpoint)


def convert_any_checkpoint_file(src: str,
                                dst: Optional[str],
                                full: Optional[bool] = None,
                                config: Optional[str] = None,
                                cfg_options: Optional[Dict[str, Any]] = None,
                                family: str = 'auto',
                                arch: Optional[Any] = None,
                                overwrite: bool = False) -> Any:
    """What ``tools/convert_checkpoint.py`` does: a whole detector/segmenter file (recognised
    from its keys when ``full`` is None, forced with ``full=True``) through
    :func:`convert_dense_checkpoint_file`; a backbone file (or ``full=False``: only the backbone
    of a detector file) through :func:`~mmhybrid.checkpoint.core.convert_checkpoint_file`.

    Returns:
        A :class:`DenseConversion` or a :class:`~mmhybrid.checkpoint.core.FileConversion`.
    """
    check_destination(src, dst, overwrite)
    if full is False:
        if config is not None:
            raise ValueError('--config checks a whole detector/segmenter file; it does not '
                             'apply to a backbone-only conversion')
        return convert_checkpoint_file(src, dst, family=family, arch=arch, overwrite=overwrite)
    obj = load_foreign_checkpoint(src)
    if full is None:
        try:
            full = is_dense_model(unwrap_state_dict(obj))
        except CheckpointLoadError:
            full = False  # the backbone path reports the unreadable content
    if full:
        if arch is not None:
            raise ValueError('--arch applies to backbone files; a whole detector/segmenter is '
                             'checked against --config')
        return convert_dense_checkpoint_file(src, dst, config, cfg_options, family, overwrite,
                                             loaded=obj)
    if config is not None:
        raise ValueError(f'{src} is not a whole detector/segmenter file (no neck or head next to '
                         f'a backbone): --config does not apply; pass --full to force it')
    return convert_checkpoint_file(src, dst, family=family, arch=arch, overwrite=overwrite)


__all__ = [
    'COMPONENTS', 'HEADS', 'DenseConversion', 'DenseReport', 'HeadSpec', 'check_fits_model',
    'convert_any_checkpoint_file', 'convert_dense_checkpoint_file', 'convert_dense_state_dict',
    'dataset_meta', 'describe', 'fit_problems', 'identify_heads', 'is_dense_model',
    'split_components'
]
