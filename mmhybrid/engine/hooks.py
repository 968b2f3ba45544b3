"""Hooks for reproducible, checkable runs, and for testing a backbone folded for inference.

``DeterministicResumeHook``
    Makes ``--resume`` after a crash continue exactly where the run stopped. mmengine
    checkpoints the model, optimizer, schedulers and message hub, but not the random generators:
    a resumed run draws other RPN/RoI samples, drop-path masks and dropout than the run it
    replaces. Saving the generators' states is not enough either (only rank 0 saves, and the
    validation loop and data-loader start-up draw from them between the save and the next
    iteration), so this hook reseeds Python's ``random``, NumPy and torch (CPU and every CUDA
    device) at the start of every training iteration and epoch from ``(seed, iteration)``: what
    an iteration draws then depends only on the seed and its index, never on the history of the
    process. With ``randomness=dict(seed=..., deterministic=True)`` a run killed at any point and
    resumed from its last checkpoint ends with the same weights as an uninterrupted run.
    Data augmentation runs in the data-loader workers, which mmengine seeds from
    ``(seed, rank, worker id)``; for exactness use ``num_workers >= 1`` with iteration-based loops
    (mmengine replays the skipped batches through the workers), and ``persistent_workers=False``
    (or ``num_workers=0``) with epoch-based loops (persistent workers carry their generator
    state from one epoch to the next, which a restarted process cannot reproduce).
    ``tools/train.py`` adds this hook when the config sets ``randomness.deterministic=True``.

``WeightSyncCheckHook``
    At the end of training (and every ``interval`` iterations if set) compares a SHA-256 digest
    of every parameter across the ranks of a distributed run and raises (or warns) naming the
    parameters that differ. Data-parallel training must keep the ranks' weights bit-identical;
    a mismatch means a desynchronised gradient reduction, a rank-dependent update or a
    parameter the wrapper does not see.

``SwitchToDeployHook``
    Before testing (after the checkpoint is loaded) calls the model's backbone's
    ``switch_to_deploy()``: its norms are folded once instead of at every call
    (``HybridBackbone.switch_to_deploy``). ``tools/test.py --switch-to-deploy`` adds it.

``OptimizeForInferenceHook``
    Before testing (after the checkpoint is loaded), on the CPU, runs
    ``mmhybrid.optimize_for_inference`` on the model: folded backbones with the CPU fast paths
    swapped in (the same predictions up to float rounding). A model on another device stays as
    it is. ``tools/test.py`` adds it unless given ``--plain``.

``OptimizeForTrainingHook``
    Before training, runs ``mmhybrid.optimize_for_training`` on the model with the hook's
    arguments (the training savers: memory or CPU speed, the same outputs and gradients).
    ``custom_hooks = [dict(type='mmhybrid.OptimizeForTrainingHook')]`` in a config.
"""
import hashlib
import logging
import random
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn as nn
from mmengine.dist import all_gather_object, get_rank
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from ..registry import HOOKS

# Streams of the derived seeds: one per iteration, and one per epoch start (the data loader of a
# new epoch is created after ``before_train_epoch``, before the epoch's first iteration).
_ITER_STREAM = 0
_EPOCH_STREAM = 1


def derived_seed(seed: int, stream: int, index: int) -> int:
    """A 32-bit seed that depends only on ``(seed, stream, index)`` (NumPy's SeedSequence)."""
    if seed < 0:
        seed += 2**64
    return int(np.random.SeedSequence([seed, stream, index]).generate_state(1)[0])


def seed_everything(seed: int) -> None:
    """Seeds ``random``, NumPy and torch (CPU and all CUDA devices) with ``seed``."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


@HOOKS.register_module()
class DeterministicResumeHook(Hook):
    """Reseeds every training iteration from ``(seed, iteration)`` so that resuming is exact.

    Args:
        seed: The base seed. Defaults to the runner's (``randomness.seed``, or the one mmengine
            drew and stored in the checkpoint's meta); that seed already differs per rank when
            ``randomness.diff_rank_seed=True``.
    """

    priority = 'VERY_HIGH'

    def __init__(self, seed: Optional[int] = None) -> None:
        if seed is not None and not isinstance(seed, int):
            raise TypeError(f'seed must be an int or None, got {type(seed).__name__}')
        self.seed = seed

    def _base_seed(self, runner) -> int:
        seed = self.seed if self.seed is not None else runner.seed
        if seed is None:
            raise RuntimeError('DeterministicResumeHook needs a seed: set randomness.seed in the '
                               'config or pass seed= to the hook')
        return int(seed)

    def before_train_epoch(self, runner) -> None:
        seed_everything(derived_seed(self._base_seed(runner), _EPOCH_STREAM, runner.epoch))

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        seed_everything(derived_seed(self._base_seed(runner), _ITER_STREAM, runner.iter))


def parameter_digests(model: torch.nn.Module) -> Dict[str, str]:
    """SHA-256 of every parameter's bytes (exact: any differing bit changes the digest)."""
    if is_model_wrapper(model):
        model = model.module
    digests = {}
    for name, param in model.named_parameters():
        data = param.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
        digests[name] = hashlib.sha256(data.numpy().tobytes()).hexdigest()
    return digests


def mismatched_parameters(per_rank: List[Dict[str, str]]) -> List[str]:
    """Names whose digest differs between ranks, or that some rank lacks."""
    names = set().union(*per_rank)
    return sorted(n for n in names if len({digests.get(n) for digests in per_rank}) != 1)


@HOOKS.register_module()
class WeightSyncCheckHook(Hook):
    """Checks that every rank of a distributed run holds bit-identical parameters.

    Args:
        interval: Also check every ``interval`` training iterations (``-1``: only at the end of
            training).
        action: ``'raise'`` (RuntimeError naming the parameters that differ) or ``'warn'``.
    """

    priority = 'LOW'

    def __init__(self, interval: int = -1, action: str = 'raise') -> None:
        if action not in ('raise', 'warn'):
            raise ValueError(f"action must be 'raise' or 'warn', got {action!r}")
        if not isinstance(interval, int) or interval == 0 or interval < -1:
            raise ValueError(f'interval must be a positive int or -1, got {interval!r}')
        self.interval = interval
        self.action = action

    def check(self, runner) -> List[str]:
        """Compares the ranks' parameters now; returns the names that differ."""
        per_rank = all_gather_object(parameter_digests(runner.model))
        bad = mismatched_parameters(per_rank)
        world = len(per_rank)
        if not bad:
            total = hashlib.sha256(''.join(sorted(per_rank[0].values())).encode()).hexdigest()
            print_log(f'WeightSyncCheckHook: the {len(per_rank[0])} parameter tensors are '
                      f'identical on all {world} ranks (iter {runner.iter}, digest '
                      f'{total[:16]})', logger='current')
            return bad
        message = (f'WeightSyncCheckHook: parameters differ between the {world} ranks at iter '
                   f'{runner.iter} (rank {get_rank()} sees {len(bad)} of {len(per_rank[0])}): '
                   + ', '.join(bad[:10]) + (' ...' if len(bad) > 10 else ''))
        if self.action == 'raise':
            raise RuntimeError(message)
        print_log(message, logger='current', level=logging.WARNING)
        return bad

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.interval > 0 and self.every_n_train_iters(runner, self.interval):
            self.check(runner)

    def after_train(self, runner) -> None:
        self.check(runner)


def _unwrapped(runner) -> nn.Module:
    """The runner's model without its DDP or test-time-augmentation wrappers."""
    model = runner.model
    while is_model_wrapper(model) or (not hasattr(model, 'backbone')
                                      and hasattr(model, 'module')):
        model = model.module
    return model


@HOOKS.register_module()
class OptimizeForInferenceHook(Hook):
    """Optimises the model's mmhybrid backbones for CPU inference before the test loop (after
    the checkpoint is loaded, which an optimised backbone refuses). Only for testing, and only
    on the CPU: a model on another device is left as it is.

    Args:
        onednn_linear: As for ``mmhybrid.optimize_for_inference`` (``None``: this CPU's
            default).
    """

    priority = 'VERY_LOW'

    def __init__(self, onednn_linear: Optional[bool] = None) -> None:
        self.onednn_linear = onednn_linear

    def before_test(self, runner) -> None:
        from mmhybrid.accel import optimize_for_inference
        model = _unwrapped(runner)
        name = type(getattr(model, 'backbone', model)).__name__
        device = next(model.parameters()).device
        if device.type != 'cpu':
            print_log(f'OptimizeForInferenceHook: {name} kept as built (on {device}, not the '
                      f'CPU)', logger='current')
            return
        optimize_for_inference(model, onednn_linear=self.onednn_linear)
        print_log(f'OptimizeForInferenceHook: {name} optimised for CPU inference',
                  logger='current')


@HOOKS.register_module()
class OptimizeForTrainingHook(Hook):
    """Swaps the training savers into the model's mmhybrid backbones before training
    (``mmhybrid.optimize_for_training``; its keyword arguments are this hook's)."""

    priority = 'VERY_HIGH'

    def __init__(self, **kwargs) -> None:
        self.kwargs = kwargs

    def before_train(self, runner) -> None:
        from mmhybrid.accel import optimize_for_training
        optimize_for_training(_unwrapped(runner), **self.kwargs)


@HOOKS.register_module()
class SwitchToDeployHook(Hook):
    """Folds the backbone for inference before the test loop (after the checkpoint is loaded,
    which a folded backbone refuses). Only for testing: a trained model goes on training, so
    validation during training keeps the backbone as built."""

    priority = 'VERY_LOW'

    def before_test(self, runner) -> None:
        backbone = getattr(_unwrapped(runner), 'backbone', None)
        if not callable(getattr(backbone, 'switch_to_deploy', None)):
            raise TypeError(f'SwitchToDeployHook: {type(backbone).__name__} backbone has no '
                            f'switch_to_deploy() (mmhybrid backbones do)')
        backbone.switch_to_deploy()
        print_log(f'SwitchToDeployHook: {type(backbone).__name__} folded for inference',
                  logger='current')
