"""Shared fixtures: where the parity data lives, and helpers used across test files."""
import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
PARITY_DIR = Path(os.environ.get('MMHYBRID_PARITY_DIR', REPO.parent / 'shared' / 'parity'))


def parity_file(name: str) -> dict:
    """Loads ``name`` from the parity folder; skips locally, fails under CI when missing."""
    path = PARITY_DIR / name
    if not path.is_file():
        message = (f'parity data {path} is missing (set MMHYBRID_PARITY_DIR to the folder '
                   f'holding the reference tensors)')
        if os.environ.get('CI', '').lower() in ('1', 'true', 'yes'):
            pytest.fail(message)
        pytest.skip(message)
    return torch.load(path, map_location='cpu', weights_only=True)


def assert_stages_close(outs, refs, tolerances: dict) -> None:
    assert len(outs) == len(refs)
    for i, (mine, ref) in enumerate(zip(outs, refs)):
        assert mine.shape == ref.shape, f'stage {i}: {tuple(mine.shape)} vs {tuple(ref.shape)}'
        torch.testing.assert_close(mine, ref, atol=tolerances['atol'], rtol=tolerances['rtol'],
                                   msg=lambda m, i=i: f'stage {i}: {m}')
