"""Checks, before a Runner is built, that the files a config names are there.

A config that points at COCO/ADE20K or at the authors' ImageNet files otherwise fails deep inside
pycocotools or the checkpoint loader; the tools say instead what is missing, where the README says
to get it, and how to try the package without it.
"""
import os.path as osp
import pickle
import sys
import zipfile
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config

from ..checkpoint.safe_load import CheckpointLoadError, load_foreign_checkpoint
from .cli import BAD_INPUT_EXIT, exit_bad_input

# Exit status of the tools when a config's inputs are missing (bad input: see ``cli``).
MISSING_INPUTS_EXIT = BAD_INPUT_EXIT


def _datasets(dataset: Any) -> Iterator[dict]:
    """A dataset config and the ones it wraps (RepeatDataset, ConcatDataset, ...)."""
    if not isinstance(dataset, dict):
        return
    yield dataset
    yield from _datasets(dataset.get('dataset'))
    for inner in dataset.get('datasets') or []:
        yield from _datasets(inner)


def _is_local(path: Any) -> bool:
    return isinstance(path, str) and bool(path) and '://' not in path


def _pretrained_files(model: Any, where: str = 'model') -> Iterator[Tuple[str, str]]:
    """``(path, where)`` of every local ``Pretrained`` checkpoint of a model config."""
    if isinstance(model, dict):
        cfgs = model.get('init_cfg')
        for cfg in cfgs if isinstance(cfgs, list) else [cfgs]:
            if isinstance(cfg, dict) and str(cfg.get('type', '')).endswith('Pretrained') \
                    and _is_local(cfg.get('checkpoint')):
                yield cfg['checkpoint'], f'{where}.init_cfg'
        for key, value in model.items():
            if isinstance(value, dict):
                yield from _pretrained_files(value, f'{where}.{key}')


def missing_inputs(cfg: Config,
                   splits: Sequence[str],
                   checkpoints: Sequence[Tuple[Optional[str], str]] = (),
                   pretrained: bool = True) -> List[str]:
    """What ``cfg`` needs and is not on disk, one line each.

    Args:
        cfg: The final config.
        splits: Dataloaders to check, e.g. ``('train', 'val')``.
        checkpoints: Further ``(path, what)`` pairs (``load_from``, the checkpoint to test).
        pretrained: Check the model's ``init_cfg=Pretrained`` files too (training initialises
            from them; testing loads a trained checkpoint instead).
    """
    missing, seen = [], set()

    def need(path: str, what: str, is_dir: bool = False) -> None:
        if path in seen:
            return
        seen.add(path)
        if not (osp.isdir(path) if is_dir else osp.isfile(path)):
            missing.append(f'{what}: {path}')

    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not isinstance(loader, dict):
            continue
        for dataset in _datasets(loader.get('dataset')):
            root = dataset.get('data_root') or ''
            if _is_local(root):
                need(root, f'data root of {split}_dataloader', is_dir=True)
            ann_file = dataset.get('ann_file')
            if _is_local(ann_file) and (not root or osp.isdir(root)):
                need(osp.join(root, ann_file), f'annotation file of {split}_dataloader')
    initial = list(_pretrained_files(cfg.get('model'))) if pretrained else []
    for path, what in initial + list(checkpoints):
        if _is_local(path):
            need(path, what)
    return missing


def missing_inputs_message(config: str, missing: Sequence[str]) -> str:
    lines = [f'{config} needs files that are not here:'] + [f'  - {m}' for m in missing]
    lines += ['Where to get them: README.md, "Train and test on COCO / ADE20K" (data) and '
              '"Checkpoints" (the authors\' files).',
              'To try mmhybrid without them: `make demo` trains and tests on synthetic data it '
              'generates.']
    return '\n'.join(lines)


def exit_if_inputs_missing(config: str,
                           cfg: Config,
                           splits: Sequence[str],
                           checkpoints: Sequence[Tuple[Optional[str], str]] = (),
                           pretrained: bool = True) -> None:
    """For the command-line tools: prints what is missing and exits with status 2 (no
    traceback)."""
    missing = missing_inputs(cfg, splits, checkpoints, pretrained)
    if missing:
        print(missing_inputs_message(config, missing), file=sys.stderr)
        raise SystemExit(MISSING_INPUTS_EXIT)


def checkpoint_to_test_problem(checkpoint: str) -> Optional[str]:
    """Why ``checkpoint`` cannot be tested, or ``None``: it must load as the Runner loads it
    (``torch.load`` with ``weights_only=True`` and the types ``import mmhybrid`` allows) and hold a
    whole detector or segmenter, not a backbone alone.

    Args:
        checkpoint: Path of an existing file.
    """
    from ..checkpoint.dense import is_dense_model  # mmhybrid.checkpoint imports this package
    try:
        obj = torch.load(checkpoint, map_location='cpu', weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError,
            zipfile.BadZipFile):
        try:
            load_foreign_checkpoint(checkpoint)
        except CheckpointLoadError as error:
            return (f'{str(error).rstrip(".")}. Give a checkpoint written by tools/train.py, or '
                    f'download the file again.')
        return (f'{checkpoint} holds Python objects that torch does not load safely (a file '
                f'of another mmdet/mmseg version?): convert it with tools/convert_checkpoint.py '
                f'{checkpoint} NEW.pth --config CONFIG, which reads it without running its code, '
                f'and test NEW.pth.')
    state_dict = obj.get('state_dict', obj) if isinstance(obj, dict) else None
    if not isinstance(state_dict, dict) or not is_dense_model(state_dict):
        return (f'{checkpoint} is not a trained detector or segmenter: it has no backbone next '
                f'to a neck or head (an ImageNet backbone file?). tools/test.py evaluates a whole '
                f'model: give a checkpoint written by tools/train.py or an authors\' released '
                f'model converted with tools/convert_checkpoint.py; ImageNet weights initialise '
                f'training through the backbone\'s init_cfg.')
    return None


def exit_if_checkpoint_unusable(checkpoint: str) -> None:
    """For ``tools/test.py``: exits with status 2 and one message when
    :func:`checkpoint_to_test_problem` finds a problem (before the Runner writes anything)."""
    problem = checkpoint_to_test_problem(checkpoint)
    if problem is not None:
        exit_bad_input(problem)
