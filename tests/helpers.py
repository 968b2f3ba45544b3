"""Helpers shared by the test files: the parity data (stored in tests/data/parity, weights and
inputs rebuilt by the parity rule), reduced models loaded from the official checkpoints, and
stage comparisons.

Imported as ``from helpers import ...`` (pytest puts tests/ on the path; conftest.py holds
fixtures only).
"""
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import copy

import torch
import torch.nn as nn

from archs import CONTRACT_MODELS, PARITY_MODELS, model_type
from mmhybrid.checkpoint import convert_state_dict, load_converted, unwrap_state_dict
from mmhybrid.registry import MODELS
from parity_rule import fill, make_input

REPO = Path(__file__).resolve().parents[1]
PARITY_DATA = Path(__file__).resolve().parent / 'data' / 'parity'
# The authors' parity files with a checkpoint; the others reuse the checkpoint of their main file.
OFFICIAL_FILES = tuple(PARITY_MODELS)


@lru_cache(maxsize=None)
def stored_case(name: str) -> dict:
    """The stored part of parity file ``name`` (tests/data/parity/<name>.pth), as saved."""
    path = PARITY_DATA / f'{name}.pth'
    if not path.is_file():
        raise FileNotFoundError(f'{path} is missing: the parity references are part of the '
                                f'repository (tests/data/parity/extract.py writes them)')
    return torch.load(path, map_location='cpu', weights_only=True)


@lru_cache(maxsize=None)
def _official_state_dict(name: str) -> 'OrderedDict[str, torch.Tensor]':
    spec = stored_case(name)['checkpoint_spec']
    state_dict = OrderedDict()
    for key, shape, dtype in spec['keys']:
        value = spec['kept'][key] if key in spec['kept'] else fill(key, shape,
                                                                    getattr(torch, dtype))
        state_dict[key] = value
    return state_dict


def official_state_dict(name: str) -> 'OrderedDict[str, torch.Tensor]':
    """The state dict of the released file ``name`` (official keys, in order); a new dict each
    call around cached tensors, which callers must not modify in place."""
    return OrderedDict(_official_state_dict(name))


def official_checkpoint(name: str) -> dict:
    """The checkpoint object exactly as the released file holds it: ``{'model': sd}`` or
    ``{'state_dict': sd}``, weights rebuilt by the parity rule."""
    return {stored_case(name)['checkpoint_spec']['wrapper']: official_state_dict(name)}


@lru_cache(maxsize=None)
def parity_case(name: str) -> dict:
    """``meta``, ``inputs``, the expected ``stages`` (and ``logits``, ``stages_iclr`` where the
    file has them) and, for a file with weights, ``checkpoint``, as in the authors' file.

    Cached for the session: treat it as read-only.
    """
    stored = stored_case(name)
    case = {k: v for k, v in stored.items() if k not in ('checkpoint_spec', 'input_spec')}
    spec = stored['input_spec']
    case['inputs'] = make_input(spec['shape'], spec['tag'], spec['pad'])
    if 'checkpoint_spec' in stored:
        case['checkpoint'] = official_checkpoint(name)
    return case


def checkpoint_name(case: str) -> str:
    """The file holding the weights of parity file ``case`` (itself, or its main file)."""
    if case in PARITY_MODELS:
        return case
    owners = [name for name in PARITY_MODELS if case.startswith(name + '_')]
    assert len(owners) == 1, case
    return owners[0]


def reduced_model(name: str, **kwargs) -> torch.nn.Module:
    """The reduced model of official file ``name`` (archs.PARITY_MODELS), not loaded."""
    model_type, arch = PARITY_MODELS[name]
    return MODELS.get(f'mmhybrid.{model_type}')(arch=arch, **kwargs)


def converted_model(name: str, **kwargs) -> torch.nn.Module:
    """The reduced model of ``name`` with the converted official weights, in eval mode.

    The conversion must place every key: nothing unmatched, missing, unexpected or resized.
    """
    model = reduced_model(name, **kwargs)
    state_dict, report = convert_state_dict(unwrap_state_dict(official_checkpoint(name)))
    load_converted(model, state_dict, report)
    assert report.ok and not report.unmatched and not report.resized, report.format()
    assert report.family == model.family, (report.family, model.family)
    return model.eval()


@lru_cache(maxsize=None)
def _converted_weights(name: str) -> Dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in converted_model(name).state_dict().items()}


def converted_weights(name: str) -> Dict[str, torch.Tensor]:
    """The state dict of :func:`converted_model` with default kwargs (cached; read-only)."""
    return dict(_converted_weights(name))


def assert_stages_close(outs: Sequence[torch.Tensor], refs: Sequence[torch.Tensor],
                        tolerances: Dict[str, float]) -> None:
    assert len(outs) == len(refs)
    for i, (mine, ref) in enumerate(zip(outs, refs)):
        assert mine.shape == ref.shape, f'stage {i}: {tuple(mine.shape)} vs {tuple(ref.shape)}'
        torch.testing.assert_close(mine, ref, atol=tolerances['atol'], rtol=tolerances['rtol'],
                                   msg=lambda m, i=i: f'stage {i}: {m}')


def as_float(outs: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    return [o.float() for o in outs]


def assert_conv_rewrite_exact(rewrite: Callable[[torch.nn.Conv2d, torch.Tensor], torch.Tensor],
                              conv: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``rewrite(conv, x)`` equals ``conv(x)`` to float64 rounding, and so do the gradients of
    ``x``, the weight and the bias (``x`` and ``conv`` in float64, ``x`` requiring grad).
    Returns the rewrite's output."""
    want = conv(x)
    got = rewrite(conv, x)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    inputs = [x, conv.weight, conv.bias]
    grads = torch.autograd.grad(got.square().sum(), inputs)
    wants = torch.autograd.grad(want.square().sum(), inputs)
    for g, w in zip(grads, wants):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-10)
    return got


def build_with_random_norms(name: str, **overrides) -> nn.Module:
    """The ``CONTRACT_MODELS`` entry ``name`` (seed 0) with BatchNorm statistics and affines far
    from the identity, so that folds and in-place norms show."""
    cfg = dict(type=f'mmhybrid.{model_type(name)}', **copy.deepcopy(CONTRACT_MODELS[name]))
    cfg.update(overrides)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.3)
                module.running_var.uniform_(0.5, 2)
                module.weight.normal_(1, 0.3)
                module.bias.normal_(0, 0.3)
    return model
