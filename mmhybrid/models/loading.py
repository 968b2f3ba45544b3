"""Checking a state dict against a model: what is missing, unexpected or of another shape.

Shared by the backbones' own load hook (every ``load_state_dict``, mmengine's ``load_from``
and ``--resume`` included) and by ``mmhybrid.checkpoint`` (conversion reports, the CLI), so that
there is one definition of "this checkpoint fits this model".
"""
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Sequence

import torch
import torch.nn as nn

class CheckpointMismatchError(ValueError):
    """A checkpoint does not belong to the model (family, arch or shapes differ)."""


def summarize_keys(keys: Sequence[str], limit: int = 6) -> str:
    """Folds block indices (``stages.0.blocks.3.x`` → ``stages.0.blocks.*.x``) for a report."""
    folded: Dict[str, int] = OrderedDict()
    for key in keys:
        pattern = re.sub(r'\.\d+(?=\.|$)', '.*', key)
        folded[pattern] = folded.get(pattern, 0) + 1
    items = [f'{p} (x{n})' if n > 1 else p for p, n in folded.items()]
    if len(items) > limit:
        items = items[:limit] + [f'... {len(items) - limit} more patterns']
    return ', '.join(items) if items else '-'


def new_parameter_keys(model: nn.Module) -> List[str]:
    """Keys the model adds on top of the pretrained trunk (the per-output norms)."""
    out_norms = getattr(model, 'out_norms', None)
    return [f'out_norms.{k}' for k in out_norms.state_dict()] if out_norms is not None else []


@dataclass
class KeyComparison:
    """How a state dict's keys and shapes relate to a model's."""
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    new_keys: List[str] = field(default_factory=list)
    mismatched: List[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def problems(self) -> str:
        problems = []
        if self.mismatched:
            problems.append(f'{len(self.mismatched)} shape mismatches, e.g. '
                            f'{self.mismatched[:3]}')
        if self.unexpected:
            problems.append(f'{len(self.unexpected)} keys the model does not have: '
                            f'{summarize_keys(self.unexpected)}')
        if self.missing:
            problems.append(f'{len(self.missing)} model keys absent from the checkpoint: '
                            f'{summarize_keys(self.missing)}')
        return '; '.join(problems)


def compare_state_dict(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> KeyComparison:
    """Compares an (unprefixed) state dict with ``model.state_dict()``.

    Keys of the per-output norms count as ``new_keys`` when absent, not as missing.
    """
    target = model.state_dict()
    new = set(new_parameter_keys(model))
    absent = [k for k in target if k not in state_dict]
    return KeyComparison(
        missing=[k for k in absent if k not in new],
        unexpected=[k for k in state_dict if k not in target],
        new_keys=[k for k in absent if k in new],
        mismatched=[f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(target[k].shape)}'
                    for k, v in state_dict.items()
                    if k in target and tuple(v.shape) != tuple(target[k].shape)])
