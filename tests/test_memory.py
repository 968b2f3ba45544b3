"""Inference memory at detection sizes (issue 17): in-place residual sums, row bands of the
wide convolutional MLPs, the bias resize as matrix products. Each must leave the function as
it was; the peaks themselves are measured by tools/benchmark.py (docs/benchmarks.md)."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmhybrid.models.backbones.cmt import IRFFN
from mmhybrid.models.backbones.van import VANMlp
from mmhybrid.models.layers import (add_residual, cubic_resize_matrix, map_row_bands,
                                    rows_per_band)


# ---------------------------------------------------------------------------- add_residual
def test_add_residual_in_place_when_exact():
    x = torch.randn(1, 4, 5, 6).contiguous(memory_format=torch.channels_last)
    branch = torch.randn(1, 4, 5, 6).contiguous(memory_format=torch.channels_last)
    expected = x + branch
    out = add_residual(branch, x)
    assert out.data_ptr() == branch.data_ptr()
    assert torch.equal(out, expected) and out.stride() == expected.stride()


@pytest.mark.parametrize('case', ['dtype', 'broadcast', 'layout', 'shared'])
def test_add_residual_out_of_place_otherwise(case):
    x = torch.randn(1, 4, 5, 6)
    branch = {'dtype': torch.randn(1, 4, 5, 6, dtype=torch.bfloat16),
              'broadcast': torch.randn(1, 4, 1, 1),
              'layout': torch.randn(1, 4, 5, 6).contiguous(memory_format=torch.channels_last),
              'shared': x[:]}[case]
    before = branch.clone()
    expected = x + branch
    out = add_residual(branch, x)
    assert torch.equal(branch, before), 'the branch must not be overwritten'
    assert torch.equal(out, expected) and out.dtype == expected.dtype
    assert out.stride() == expected.stride()


def test_add_residual_gradients():
    conv = nn.Conv2d(3, 3, 3, padding=1)
    x = torch.randn(1, 3, 6, 7, requires_grad=True)
    add_residual(conv(x), x).square().sum().backward()
    grads = [x.grad.clone(), conv.weight.grad.clone()]
    x.grad = conv.weight.grad = None
    (x + conv(x)).square().sum().backward()
    torch.testing.assert_close(grads, [x.grad, conv.weight.grad], rtol=0, atol=0)


# ---------------------------------------------------------------------------- row bands
def _chain():
    # Looks 1 + 4 = 5 rows up and down.
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 12, 1), nn.GELU(),
                         nn.Conv2d(12, 12, 3, padding=1, groups=12),
                         nn.Conv2d(12, 12, 5, padding=4, dilation=2, groups=12),
                         nn.Conv2d(12, 5, 1)).eval()


@pytest.mark.parametrize('channels_last', [False, True])
@pytest.mark.parametrize('rows', [1, 3, 7, 40])
def test_row_bands_equal_whole_map(rows, channels_last):
    fn = _chain()
    x = torch.randn(2, 3, 17, 9)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = fn(x)
        out = map_row_bands(fn, x, halo=1 + 4, rows=rows)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    assert out.is_contiguous(memory_format=torch.channels_last) == channels_last


def test_row_bands_too_small_halo_differs():
    # The check above would pass for any halo if the bands were not cut: one row less differs.
    fn = _chain()
    x = torch.randn(1, 3, 17, 9)
    with torch.no_grad():
        assert not torch.allclose(map_row_bands(fn, x, halo=4, rows=3), fn(x), atol=1e-4)


def test_rows_per_band():
    x = torch.empty(1, 8, 100, 50)
    assert rows_per_band(x, 64, band_bytes=64 * 50 * 4 * 10) == 10
    assert rows_per_band(x, 64, band_bytes=1) == 1


@pytest.mark.parametrize('module', ['irffn', 'vanmlp'])
def test_wide_mlps_in_bands_at_inference(module, monkeypatch):
    torch.manual_seed(0)
    if module == 'irffn':
        mlp = IRFFN(8, 32, dict(type='BN'), dict(type='GELU'))
        for bn in (mlp.norm1, mlp.norm2, mlp.norm3):  # non-trivial running statistics
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
    else:
        mlp = VANMlp(8, 32, dict(type='GELU'))
    mlp.eval()
    x = torch.randn(1, 8, 23, 11).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        whole = mlp._forward(x)
        monkeypatch.setattr(f'mmhybrid.models.backbones.{"cmt" if module == "irffn" else "van"}'
                            '.rows_per_band', lambda *a: 4)
        banded = mlp(x)
    torch.testing.assert_close(banded, whole, rtol=1e-6, atol=1e-6)
    assert banded.is_contiguous(memory_format=torch.channels_last)
    # With autograd on, no bands (the backward needs the whole maps anyway).
    torch.testing.assert_close(mlp(x), whole, rtol=0, atol=0)


# ---------------------------------------------------------------------------- bias resize
@pytest.mark.parametrize('size_in,size_out', [(7, 25), (56, 200), (4, 3), (1, 5), (5, 1)])
def test_cubic_resize_matrix_is_interpolate(size_in, size_out):
    signal = torch.randn(3, size_in, dtype=torch.float64)
    expected = F.interpolate(signal[None, :, None, :], size=(1, size_out), mode='bicubic',
                             align_corners=False)[0, :, 0]
    matrix = cubic_resize_matrix(size_in, size_out, torch.float64, torch.device('cpu'))
    assert matrix.shape == (size_out, size_in)
    torch.testing.assert_close(signal @ matrix.t(), expected)
