"""TransCNN (v1) and HAT-Net (v2): the any-size H-MHSA, the two-branch downsample, variants.
Parity and checkpoint conversion are in test_parity.py and test_converters.py."""
import math

import pytest
import torch
import torch.nn.functional as F

from helpers import converted_model, parity_case, reduced_model
from mmhybrid.models import HATNet, TransCNN
from mmhybrid.models.backbones import transcnn as transcnn_module
from mmhybrid.models.backbones.transcnn import HMHSA, TwoBranchDownsample

# The reduced models of the parity files.
PARITY_FILES = {'hatnet': 'hatnet_small_reduced', 'transcnn': 'transcnn_small_reduced'}
FAMILIES = sorted(PARITY_FILES)


@pytest.fixture(scope='module', params=FAMILIES)
def family(request):
    return request.param


@pytest.fixture(scope='module')
def loaded(family):
    return converted_model(PARITY_FILES[family])


# ---------------------------------------------------------------------------- parity
def test_parity_sizes_need_no_padding(family, loaded, monkeypatch):
    """The parity sizes (256 / 224) divide every window: no padding path may run."""
    calls = []
    real_pad = F.pad
    monkeypatch.setattr(transcnn_module.F, 'pad',
                        lambda *a, **k: calls.append(a[0].shape) or real_pad(*a, **k))
    with torch.no_grad():
        loaded(parity_case(PARITY_FILES[family])['inputs'][:1])
    assert calls == []


def test_non_divisible_size_runs(loaded):
    torch.manual_seed(0)
    with torch.no_grad():
        outs = loaded(torch.randn(1, 3, 230, 302))
    for out, stride in zip(outs, (4, 8, 16, 32)):
        assert out.shape[2:] == (math.ceil(230 / stride), math.ceil(302 / stride))
        assert torch.isfinite(out).all()


def test_every_parameter_gets_a_gradient_after_loading(family, loaded):
    """HAT-Net's unused proj_norm is dropped, so DDP needs no find_unused_parameters."""
    model = reduced_model(PARITY_FILES[family])
    model.load_state_dict(loaded.state_dict())
    model.train()
    sum(o.mean() for o in model(torch.randn(2, 3, 70, 90))).backward()
    assert all(p.grad is not None for p in model.parameters())
    assert not any('proj_norm' in k for k in model.state_dict())


# ---------------------------------------------------------------------------- H-MHSA
def _attend(q, k, v, scale):
    return torch.softmax(q @ k.transpose(-2, -1) * scale, dim=-1) @ v


def reference_hmhsa(attn: HMHSA, x: torch.Tensor) -> torch.Tensor:
    """H-MHSA by its definition, window by window and cell by cell, without any padding:
    windows and pooling cells are the g- and r-grids anchored at the top-left, clipped to the
    map; a clipped pooling cell averages its real tokens."""
    b, c, h, w = x.shape
    heads, d, g, r = attn.num_heads, attn.head_dim, attn.window_size, attn.pool_ratio
    scale = d ** -0.5

    def split(t):  # (B, C, n) -> (B, heads, n, d)
        return t.reshape(b, heads, d, -1).transpose(-2, -1)

    def merge(t, hh, ww):
        return t.transpose(-2, -1).reshape(b, c, hh, ww)

    qkv = attn.qkv(attn.norm(x))
    if g == 1:
        q, k, v = (split(t.flatten(2)) for t in qkv.chunk(3, dim=1))
        return attn.proj(merge(_attend(q, k, v, scale), h, w))
    local = torch.zeros_like(x)
    for i in range(0, h, g):
        for j in range(0, w, g):
            win = qkv[:, :, i:i + g, j:j + g]
            hh, ww = win.shape[2:]
            q, k, v = (split(t.flatten(2)) for t in win.chunk(3, dim=1))
            local[:, :, i:i + g, j:j + g] = merge(_attend(q, k, v, scale), hh, ww)
    y = attn.grid_norm(x + local)
    cells = torch.stack([
        torch.stack([y[:, :, i:i + r, j:j + r].mean(dim=(2, 3)) for j in range(0, w, r)], -1)
        for i in range(0, h, r)
    ], -2)
    k, v = (split(t.flatten(2)) for t in attn.kv(attn.ds_norm(cells)).chunk(2, dim=1))
    glob = merge(_attend(split(attn.q(y).flatten(2)), k, v, scale), h, w)
    return attn.proj(glob + y)


def _randomise(module):
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.randn_like(p) * (0.1 if 'norm' in name else 1.) +
                    (1. if 'norm' in name and name.endswith('weight') else 0.))
        for name, buf in module.named_buffers():
            if name.endswith('running_mean'):
                buf.copy_(torch.randn_like(buf) * 0.1)
            elif name.endswith('running_var'):
                buf.uniform_(0.5, 1.5)


@pytest.mark.parametrize('norm_cfg', [dict(type='GN', num_groups=1, eps=1e-6), dict(type='BN')],
                         ids=['GN', 'BN'])
@pytest.mark.parametrize('window, ratio, size', [
    (4, 4, (16, 24)),   # divisible: the official partition
    (4, 3, (13, 18)),   # padded windows, partial pooling cells
    (7, 2, (5, 9)),     # map smaller than a window in one direction
    (5, 8, (11, 6)),    # pooling cell larger than the map
    (1, 1, (7, 5)),     # plain global attention
])
def test_hmhsa_matches_definition(norm_cfg, window, ratio, size):
    attn = HMHSA(16, 4, window, ratio, norm_cfg).double().eval()
    _randomise(attn)
    x = torch.randn(2, 16, *size, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(attn(x), reference_hmhsa(attn, x), rtol=1e-10, atol=1e-10)


def test_hmhsa_real_tokens_ignore_padding_content(monkeypatch):
    """Whatever the padded positions hold, real tokens get the same result (masked keys)."""
    attn = HMHSA(16, 4, 4, 3, dict(type='GN', num_groups=1, eps=1e-6)).double().eval()
    _randomise(attn)
    x = torch.randn(1, 16, 10, 7, dtype=torch.float64)
    with torch.no_grad():
        ref = attn(x)
        real_pad = F.pad
        monkeypatch.setattr(transcnn_module.F, 'pad',
                            lambda t, p, *a, **k: real_pad(t, p, value=1e3))
        torch.testing.assert_close(attn(x), ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize('size', [(16, 20), (15, 20), (9, 13), (1, 1)])
def test_two_branch_downsample_pads_to_even(size):
    """Odd sizes: the conv branch sees zeros, the max-pool branch -inf beyond the edge; even
    sizes: exactly the official floor-mode MaxPool2d(2, 2)."""
    tdb = TwoBranchDownsample(8, 16, dict(type='BN'), dict(type='SiLU')).double().eval()
    _randomise(tdb)
    x = torch.randn(2, 8, *size, dtype=torch.float64)
    h, w = size
    padded = F.pad(x, (0, w % 2, 0, h % 2), value=-math.inf)
    conv_in = F.pad(x, (0, w % 2, 0, h % 2))
    expected = tdb.act(tdb.norm1(tdb.conv(conv_in)) +
                       tdb.norm2(tdb.residual(F.max_pool2d(padded, 2, 2))))
    with torch.no_grad():
        out = tdb(x)
        torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    assert out.shape[2:] == (math.ceil(h / 2), math.ceil(w / 2))


# ---------------------------------------------------------------------------- variants
@pytest.mark.parametrize('cls, published', [
    (HATNet, dict(tiny=12.7e6, small=25.7e6, medium=42.9e6, large=63.1e6)),
    (TransCNN, dict(tiny=13.3e6, small=26.5e6, medium=48.3e6, large=80.0e6)),
])
def test_real_variant_param_counts(cls, published):
    # The paper's totals include the classifier (and HAT-Net's unused proj_norm weights).
    for arch, total in published.items():
        with torch.device('meta'):
            model = cls(arch=arch)
        params = sum(p.numel() for p in model.parameters())
        extra = model.stage_channels[-1] * 1000 + 1000
        if cls is HATNet:
            extra += sum(2 * c * n for c, n in zip(model.stage_channels,
                                                    model.arch_settings['depths']))
        assert params + extra == pytest.approx(total, rel=0.01), arch


def test_variant_settings():
    assert HATNet(arch='tiny').arch_settings['kernel_sizes'] == [3, 3, 3, 3]
    medium = HATNet.parse_arch('medium')[1]
    assert medium['kernel_sizes'] == [5, 3, 5, 3]
    assert medium['window_sizes'] == [8, 7, 7, 1] and medium['pool_ratios'] == [8, 4, 2, 1]
    small = TransCNN.parse_arch('s')[1]
    assert small['kernel_sizes'] == [5, 3, 5, 3] and small['window_sizes'] == [8, 8, 8, 1]
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in TransCNN(arch='tiny').modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in HATNet(arch='tiny').modules())


@pytest.mark.parametrize('cls', [HATNet, TransCNN])
def test_invalid_arch_values(cls):
    base = dict(embed_dims=[16, 32, 48, 64], depths=[1, 1, 1, 1], head_dim=16,
                expansions=[2, 2, 2, 2])
    cls(arch=base)
    with pytest.raises(ValueError, match='head_dim'):
        cls(arch=dict(base, head_dim=12))
    with pytest.raises(ValueError, match='kernel_sizes'):
        cls(arch=dict(base, kernel_sizes=[3, 4, 3, 3]))
    with pytest.raises(ValueError, match='window_sizes'):
        cls(arch=dict(base, window_sizes=[8, 0, 7, 1]))
    with pytest.raises(ValueError, match='pool_ratios'):
        cls(arch=dict(base, pool_ratios=[8, 4, 2]))
