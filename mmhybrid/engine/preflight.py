"""Checks, before a Runner is built, that the files a config names are there.

A config that points at COCO/ADE20K or at the authors' ImageNet files otherwise fails deep inside
pycocotools or the checkpoint loader; the tools say instead what is missing, where the README says
to get it, and how to try the package without it.
"""
import os.path as osp
import sys
from typing import Any, Iterator, List, Optional, Sequence, Tuple

from mmengine.config import Config

# Exit status of the tools when a config's inputs are missing (argparse uses 2 for bad usage).
MISSING_INPUTS_EXIT = 2


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
