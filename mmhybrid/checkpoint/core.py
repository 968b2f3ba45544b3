"""Recognising, converting and loading the authors' released checkpoints.

Every family registers one :class:`FamilyConverter`: a ``detect`` predicate over state-dict
keys and a pure ``convert`` function ``state_dict -> (state_dict, ConversionReport)`` that is
idempotent (converting an already converted state dict changes nothing). The CLI
(``tools/convert_checkpoint.py``), ``init_cfg=dict(type='Pretrained', ...)`` and the tests all go
through the functions of this module.
"""
import hashlib
import io
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log

from ..engine.atomic_backend import atomic_write_bytes
from ..models.loading import (CheckpointMismatchError, KeyComparison, compare_state_dict,
                              summarize_keys)
from ..registry import MODELS, WEIGHT_INITIALIZERS
from .safe_load import CheckpointLoadError, load_foreign_checkpoint

StateDict = Dict[str, torch.Tensor]


@dataclass
class ConversionReport(KeyComparison):
    """What a conversion and a load did to the keys of a checkpoint (the comparison with the
    model's keys, plus what the converter did)."""
    family: str = ''
    dropped: List[str] = field(default_factory=list)
    renamed: int = 0
    unmatched: List[str] = field(default_factory=list)
    resized: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every key was placed and every model key was filled."""
        return not (self.unmatched or self.missing or self.unexpected)

    def format(self) -> str:
        lines = [f'checkpoint family: {self.family or "?"}; renamed {self.renamed} keys']
        for title, keys in (('dropped', self.dropped), ('resized', self.resized),
                            ('newly initialised', self.new_keys),
                            ('unmatched (not understood)', self.unmatched),
                            ('missing in checkpoint', self.missing),
                            ('unexpected in checkpoint', self.unexpected)):
            if keys:
                lines.append(f'  {title} [{len(keys)}]: {summarize_keys(keys)}')
        return '\n'.join(lines)


@dataclass(frozen=True)
class FamilyConverter:
    """How to recognise and convert the checkpoints of one family.

    Attributes:
        family: Family name (``'van'``); a backbone class names it in ``family``.
        model_type: Registered backbone name (``'VAN'``).
        detect: True when a (prefix-stripped) state dict belongs to this family, in the
            official layout or in mmhybrid's own.
        convert: Pure, idempotent function ``state_dict -> (state_dict, report)``.

    Shape adaptation that needs the target model (e.g. position biases of another pretrain
    size) is the backbone's own business: ``HybridBackbone.adapt_state_dict``, run by its load
    hook.
    """
    family: str
    model_type: str
    detect: Callable[[Mapping[str, Any]], bool]
    convert: Callable[[Mapping[str, torch.Tensor]], Tuple[StateDict, ConversionReport]]


CONVERTERS: Dict[str, FamilyConverter] = OrderedDict()


def rename_prefix(text: str, renames: Sequence[Tuple[str, str]]) -> str:
    """Replaces the first matching ``old`` prefix of ``text`` by its ``new`` (else unchanged)."""
    for old, new in renames:
        if text.startswith(old):
            return new + text[len(old):]
    return text


def remap_keys(state_dict: Mapping[str, torch.Tensor], family: str,
               rename: Callable[[str], Optional[str]],
               is_dropped: Callable[[str], bool]) -> Tuple[StateDict, ConversionReport]:
    """The loop every family converter shares.

    ``is_dropped(key)``: the key is not part of the backbone (classifier, derived buffers) and is
    reported as dropped. ``rename(key)``: the key's mmhybrid name (itself for keys already in
    mmhybrid's layout, which keeps converters idempotent), or ``None`` when the key is not
    understood: it is then kept under its own name and reported as unmatched, so that loading it
    fails loudly instead of silently.
    """
    report = ConversionReport(family=family)
    out: StateDict = OrderedDict()
    for key, value in state_dict.items():
        if is_dropped(key):
            report.dropped.append(key)
            continue
        new_key = rename(key)
        if new_key is None:
            report.unmatched.append(key)
            new_key = key
        elif new_key != key:
            report.renamed += 1
        out[new_key] = value
    return out, report


def register_converter(converter: FamilyConverter) -> FamilyConverter:
    CONVERTERS[converter.family] = converter
    return converter


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) for k in obj) and any(
            isinstance(v, torch.Tensor) for v in obj.values())


def unwrap_state_dict(obj: Any,
                      wrapper_keys: Sequence[str] = ('state_dict', 'model', 'model_ema',
                                                     'module')) -> StateDict:
    """Finds the state dict inside a checkpoint object (``{'model': sd}``, plain ``sd``...).

    Raises:
        CheckpointLoadError: No state dict of tensors could be found.
    """
    if isinstance(obj, Mapping):
        for key in wrapper_keys:
            if key in obj and _is_state_dict(obj[key]):
                obj = obj[key]
                break
    if not _is_state_dict(obj):
        keys = list(obj)[:8] if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointLoadError(f'no state dict of tensors found in the checkpoint '
                                  f'(top-level: {keys})')
    return OrderedDict((k, v) for k, v in obj.items() if isinstance(v, torch.Tensor))


def strip_prefix(state_dict: Mapping[str, torch.Tensor],
                 prefix: Optional[str] = None) -> Tuple[StateDict, List[str]]:
    """Removes ``module.`` (DDP) and selects the ``backbone.`` part of detector/classifier files.

    Returns the stripped state dict and the keys that were left out (other components).
    """
    sd = OrderedDict((k[len('module.'):] if k.startswith('module.') else k, v)
                     for k, v in state_dict.items())
    if prefix is None and any(k.startswith('backbone.') for k in sd):
        prefix = 'backbone.'
    if not prefix:
        return sd, []
    if not prefix.endswith('.'):
        prefix += '.'
    selected = OrderedDict((k[len(prefix):], v) for k, v in sd.items() if k.startswith(prefix))
    if not selected:
        raise CheckpointMismatchError(f'no key of the checkpoint starts with {prefix!r}')
    return selected, [k for k in sd if not k.startswith(prefix)]


def detect_family(state_dict: Mapping[str, Any]) -> Optional[str]:
    """Name of the family whose converter recognises ``state_dict`` (``None`` if none)."""
    for name, converter in CONVERTERS.items():
        if converter.detect(state_dict):
            return name
    return None


def get_converter(family: str) -> FamilyConverter:
    if family not in CONVERTERS:
        raise ValueError(f'unknown checkpoint family {family!r}; known: {list(CONVERTERS)}')
    return CONVERTERS[family]


def convert_state_dict(state_dict: Mapping[str, torch.Tensor],
                       family: str = 'auto') -> Tuple[StateDict, ConversionReport]:
    """Converts an (unwrapped, prefix-stripped) official state dict to mmhybrid's layout."""
    detected = detect_family(state_dict)
    if family == 'auto':
        if detected is None:
            raise CheckpointMismatchError(
                f'the checkpoint is not recognised as any supported family '
                f'({list(CONVERTERS)}); its keys look like: {summarize_keys(list(state_dict))}')
        family = detected
    elif detected is not None and detected != family:
        raise CheckpointMismatchError(f'the checkpoint looks like a {detected!r} checkpoint, '
                                      f'not {family!r}')
    elif detected is None:
        raise CheckpointMismatchError(
            f'the checkpoint is not recognised as a {family!r} checkpoint; its keys look '
            f'like: {summarize_keys(list(state_dict))}')
    sd, report = get_converter(family).convert(state_dict)
    report.family = family
    return sd, report


def read_checkpoint(path: str, prefix: Optional[str] = None) -> Tuple[StateDict, List[str]]:
    """Safely loads a file, unwraps and strips it: ``(state_dict, keys of other components)``."""
    if isinstance(path, str) and path.startswith(('http://', 'https://')):
        path = _download(path)
    return strip_prefix(unwrap_state_dict(load_foreign_checkpoint(path)), prefix)


def _download(url: str) -> str:
    hub_dir = os.path.join(torch.hub.get_dir(), 'checkpoints')
    os.makedirs(hub_dir, exist_ok=True)
    dst = os.path.join(hub_dir, os.path.basename(url.split('?')[0]))
    if not os.path.exists(dst):
        torch.hub.download_url_to_file(url, dst)
    return dst


def adapt_to_model(state_dict: StateDict, model: nn.Module, report: ConversionReport) -> None:
    """Applies the backbone's shape adaptation (if any) in place; records resized keys."""
    adapt = getattr(model, 'adapt_state_dict', None)
    if adapt is not None:
        report.resized += adapt(state_dict)


def compare_with_model(state_dict: Mapping[str, torch.Tensor], model: nn.Module,
                       report: ConversionReport) -> List[str]:
    """Fills the key comparison of ``report`` (missing, unexpected, new, mismatched shapes);
    returns the shape mismatches."""
    comparison = compare_state_dict(state_dict, model)
    report.missing = comparison.missing
    report.unexpected = comparison.unexpected
    report.new_keys = comparison.new_keys
    report.mismatched = comparison.mismatched
    return comparison.mismatched


def match_arch(model_cls: type, state_dict: Mapping[str, torch.Tensor]) -> List[str]:
    """Names of the ``arch_zoo`` variants whose keys and shapes equal the state dict's."""
    matches = []
    for name in model_cls.arch_zoo:
        with torch.device('meta'):
            model = model_cls(arch=name)
        report = ConversionReport()
        mismatched = compare_with_model(state_dict, model, report)
        if not (mismatched or report.missing or report.unexpected):
            matches.append(name)
    return matches


def matching_archs(model_cls: type, state_dict: Mapping[str, torch.Tensor]) -> List[str]:
    """:func:`match_arch` for an error message's hint: ``[]`` when the variants cannot be built
    or compared (the hint is best effort, the error it decorates is not)."""
    try:
        return match_arch(model_cls, state_dict)
    except Exception:  # noqa: BLE001 - best effort
        return []


def load_converted(model: nn.Module, state_dict: Mapping[str, torch.Tensor],
                   report: ConversionReport) -> ConversionReport:
    """Loads an mmhybrid-layout state dict into ``model``, refusing partial or wrong loads."""
    state_dict = OrderedDict(state_dict)
    adapt_to_model(state_dict, model, report)
    compare_with_model(state_dict, model, report)
    if not report.fits:
        arch = getattr(model, 'arch_name', '?')
        matches = matching_archs(type(model), state_dict)
        hint = f' The checkpoint matches arch {matches} instead.' if matches else ''
        raise CheckpointMismatchError(
            f'checkpoint does not fit {type(model).__name__}(arch={arch!r}): '
            f'{report.problems()}.{hint}')
    model.load_state_dict(state_dict, strict=False)
    return report


def load_pretrained(model: nn.Module, path: str, prefix: Optional[str] = None,
                    logger: Any = 'current') -> ConversionReport:
    """Loads an official (or converted) checkpoint file into an mmhybrid backbone.

    The file is read without executing code, unwrapped, recognised, converted in memory and
    loaded; a checkpoint of another family or arch is an error. A one-screen report is logged.
    """
    family = getattr(model, 'family', '')
    state_dict, others = read_checkpoint(path, prefix)
    try:
        state_dict, report = convert_state_dict(state_dict, family)
    except CheckpointMismatchError as error:
        raise CheckpointMismatchError(f'{path}: {error} (model: {type(model).__name__})') \
            from error
    if others:
        report.dropped = others + report.dropped
    try:
        load_converted(model, state_dict, report)
    except CheckpointMismatchError as error:
        raise CheckpointMismatchError(f'{path}: {error}') from error
    print_log(f'Loaded {path} into {type(model).__name__}'
              f'(arch={getattr(model, "arch_name", "?")!r})\n{report.format()}', logger=logger)
    return report


@WEIGHT_INITIALIZERS.register_module(name='Pretrained')
class CheckedPretrainedInit:
    """``init_cfg=dict(type='Pretrained', checkpoint=PATH, prefix=None)`` for mmhybrid backbones.

    Backbones route their ``Pretrained`` entries here (as ``mmhybrid.Pretrained``), so that a
    dict or a list ``init_cfg`` loads through :func:`load_pretrained`: the authors' released
    files are recognised and converted, and anything short of a complete load is an error.

    Args:
        checkpoint: Path or URL of the file.
        prefix: Part of a detector/classifier file to take (``'backbone.'`` is found by itself).
        map_location: Accepted for compatibility with mmengine's ``PretrainedInit``; files are
            always read to the CPU.
    """

    def __init__(self,
                 checkpoint: str,
                 prefix: Optional[str] = None,
                 map_location: str = 'cpu') -> None:
        self.checkpoint = checkpoint
        self.prefix = prefix

    def __call__(self, module: nn.Module) -> None:
        load_pretrained(module, self.checkpoint, prefix=self.prefix)

    def _get_init_info(self) -> str:
        return f'{type(self).__name__}: load from {self.checkpoint}'


def save_checkpoint_object(obj: Any, dst: str) -> str:
    """Writes ``obj`` (tensors in plain containers) with ``torch.save`` atomically; returns the
    file's sha256."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    atomic_write_bytes(data, dst)
    return hashlib.sha256(data).hexdigest()


def save_state_dict(state_dict: Mapping[str, torch.Tensor], dst: str) -> str:
    """Writes a plain tensor state dict atomically; returns its sha256."""
    return save_checkpoint_object(
        OrderedDict((k, v.contiguous()) for k, v in state_dict.items()), dst)


def check_destination(src: str, dst: Optional[str], overwrite: bool = False) -> None:
    """Refuses to write onto ``src``, or over an existing ``dst`` unless ``overwrite``.

    Raises:
        FileExistsError: ``dst`` is ``src``, or exists without ``overwrite``.
    """
    if dst is None or not os.path.exists(dst):
        return
    if os.path.exists(src) and os.path.samefile(src, dst):
        raise FileExistsError(f'refusing to write the converted checkpoint over its source '
                              f'{src}')
    if not overwrite:
        raise FileExistsError(f'{dst} exists; pass --overwrite to replace it')


@dataclass
class FileConversion:
    """Result of :func:`convert_checkpoint_file`."""
    family: str
    arch: Optional[str]
    report: ConversionReport
    sha256: Optional[str]
    state_dict: StateDict


def _model_class(family: str) -> type:
    return MODELS.get(f'mmhybrid.{get_converter(family).model_type}')


def convert_checkpoint_file(src: str,
                            dst: Optional[str],
                            family: str = 'auto',
                            arch: Optional[Any] = None,
                            overwrite: bool = False) -> FileConversion:
    """Converts an official checkpoint file to a plain mmhybrid backbone state dict.

    The result is checked against the backbone of ``arch`` (or, when ``arch`` is None, against
    every variant of the family's ``arch_zoo``); nothing is written unless every key was placed.
    ``dst`` is written atomically, never onto ``src`` and never over an existing file unless
    ``overwrite``. ``dst=None`` only checks.

    Raises:
        CheckpointLoadError: ``src`` is unreadable.
        CheckpointMismatchError: keys were left unmatched or do not fit the arch.
        FileExistsError: ``dst`` exists (without ``overwrite``) or is ``src``.
    """
    check_destination(src, dst, overwrite)
    state_dict, others = read_checkpoint(src)
    state_dict, report = convert_state_dict(state_dict, family)
    report.dropped = others + report.dropped
    cls = _model_class(report.family)
    if arch is None:
        matches = match_arch(cls, state_dict)
        if not matches:
            raise CheckpointMismatchError(
                f'{src}: the {report.family} checkpoint matches no variant of '
                f'{cls.__name__}.arch_zoo ({list(cls.arch_zoo)}); pass --arch (a name or a JSON '
                f'dict) to check it against a custom arch'
                + (f'; unmatched keys: {summarize_keys(report.unmatched)}'
                   if report.unmatched else ''))
        arch_name = matches[0] if len(matches) == 1 else '|'.join(matches)
        target_arch = matches[0]
    else:
        target_arch = arch
        arch_name = arch if isinstance(arch, str) else 'custom'
    with torch.device('meta'):
        model = cls(arch=target_arch)
    adapt_to_model(state_dict, model, report)
    mismatched = compare_with_model(state_dict, model, report)
    if mismatched or not report.ok:
        problems = mismatched[:3] + ([f'unmatched: {summarize_keys(report.unmatched)}']
                                     if report.unmatched else [])
        raise CheckpointMismatchError(
            f'{src} does not convert cleanly to {cls.__name__}(arch={arch_name!r}):\n'
            f'{report.format()}' + (f'\n  {problems}' if problems else ''))
    sha = save_state_dict(state_dict, dst) if dst is not None else None
    return FileConversion(report.family, arch_name, report, sha, state_dict)
