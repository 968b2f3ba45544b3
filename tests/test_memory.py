"""Memory at detection sizes: row bands of the wide convolutional MLPs
(mmhybrid.accel, inference), the bias resize as matrix products, attention with a learnable
bias that recomputes its probabilities in the backward and GELU+BatchNorm storing one map
(mmhybrid.accel, training). Each must leave the function and its gradients as they were; the
peaks themselves are measured by tools/benchmark.py (docs/benchmarks.md)."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from archs import CONTRACT_MODELS
from mmhybrid.registry import MODELS
from mmhybrid.accel import attention as attention_grad
from mmhybrid.accel import optimize_for_training
from mmhybrid.accel.attention import recomputed_bias_attention, recomputed_bias_kernel
from mmhybrid.accel.cmt import FastIRFFN, gelu_batchnorm_pairs
from mmhybrid.accel.layers import GeluBatchNorm, GeluBatchNorm2d
from mmhybrid.accel.ops import map_row_bands, pointwise_conv, rows_per_band
from mmhybrid.accel.van import FastVANMlp
from mmhybrid.models.backbones.cmt import IRFFN
from mmhybrid.models.backbones.van import VANMlp
from mmhybrid.models.layers import cubic_resize_matrix, grouped_attention


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
    plain = mlp.eval()
    fast = copy.deepcopy(plain)
    if module == 'irffn':
        fast.switch_to_deploy()
    fast.__class__ = FastIRFFN if module == 'irffn' else FastVANMlp
    x = torch.randn(1, 8, 23, 11).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        whole = plain(x)
        torch.testing.assert_close(fast(x), whole, rtol=1e-5, atol=1e-5)
        monkeypatch.setattr(f'mmhybrid.accel.{"cmt" if module == "irffn" else "van"}'
                            '.rows_per_band', lambda *a: 4)
        banded = fast(x)
    torch.testing.assert_close(banded, whole, rtol=1e-5, atol=1e-5)
    assert banded.is_contiguous(memory_format=torch.channels_last)


# ---------------------------------------------------------------------------- bias resize
@pytest.mark.parametrize('size_in,size_out', [(7, 25), (56, 200), (4, 3), (1, 5), (5, 1)])
def test_cubic_resize_matrix_is_interpolate(size_in, size_out):
    signal = torch.randn(3, size_in, dtype=torch.float64)
    expected = F.interpolate(signal[None, :, None, :], size=(1, size_out), mode='bicubic',
                             align_corners=False)[0, :, 0]
    matrix = cubic_resize_matrix(size_in, size_out, torch.float64, torch.device('cpu'))
    assert matrix.shape == (size_out, size_in)
    torch.testing.assert_close(signal @ matrix.t(), expected)


# ---------------------------------------------------------------------------- training
def _explicit(q, k, v, mask, scale):
    """The plain formula: softmax(q k^T * scale + mask) v."""
    return ((q @ k.transpose(-2, -1)) * scale + mask).softmax(-1) @ v


def _attention_inputs(mask_shape, dtype=torch.float64, batch=2, heads=3, num_q=7, num_k=5):
    torch.manual_seed(0)
    q = torch.randn(batch, heads, num_q, 4, dtype=dtype, requires_grad=True)
    k = torch.randn(batch, heads, num_k, 4, dtype=dtype, requires_grad=True)
    v = torch.randn(batch, heads, num_k, 4, dtype=dtype, requires_grad=True)
    mask = torch.randn(*mask_shape, dtype=dtype, requires_grad=True)
    return q, k, v, mask


# A bias shared by the images; one per image; a per-key row broadcast over the queries.
MASK_SHAPES = [(1, 3, 7, 5), (2, 3, 7, 5), (2, 1, 1, 5)]


@pytest.mark.parametrize('mask_shape', MASK_SHAPES)
@pytest.mark.parametrize('band_bytes', [1, 1 << 20])  # one query per band / all at once
def test_recomputed_bias_attention_gradcheck(mask_shape, band_bytes, monkeypatch):
    monkeypatch.setattr(attention_grad, 'BACKWARD_BAND_BYTES', band_bytes)
    q, k, v, mask = _attention_inputs(mask_shape)
    assert torch.autograd.gradcheck(
        lambda *t: recomputed_bias_attention(*t, scale=0.7), (q, k, v, mask))


@pytest.mark.parametrize('mask_shape', MASK_SHAPES)
def test_recomputed_bias_attention_is_the_formula(mask_shape, monkeypatch):
    monkeypatch.setattr(attention_grad, 'BACKWARD_BAND_BYTES', 3 * 5 * 8 * 2 * 2)  # 2-row bands
    q, k, v, mask = _attention_inputs(mask_shape)
    grad_out = torch.randn(2, 3, 7, 4, dtype=torch.float64)
    out = recomputed_bias_attention(q, k, v, mask, scale=0.7)
    grads = torch.autograd.grad(out, (q, k, v, mask), grad_out)
    expected = _explicit(q, k, v, mask, 0.7)
    expected_grads = torch.autograd.grad(expected, (q, k, v, mask), grad_out)
    torch.testing.assert_close(out, expected)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want)
    # Only the inputs that need a gradient get one.
    q2, k2, v2 = (t.detach() for t in (q, k, v))
    (grad_mask, ) = torch.autograd.grad(recomputed_bias_attention(q2, k2, v2, mask, 0.7),
                                        (mask, ), grad_out)
    torch.testing.assert_close(grad_mask, expected_grads[3])


@pytest.mark.parametrize('band_bytes', [3 * 5 * 8 * 2, 1 << 20])  # 2-row bands / one band
def test_recomputed_bias_attention_on_strided_heads(band_bytes, monkeypatch):
    # Batch 1 with q, k, v as the (B, N, heads, d) -> (B, heads, N, d) views split_heads gives:
    # the query gradient is written band by band into a contiguous buffer all the same.
    monkeypatch.setattr(attention_grad, 'BACKWARD_BAND_BYTES', band_bytes)
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, n, 3, 4, dtype=torch.float64).transpose(1, 2).requires_grad_()
               for n in (7, 5, 5))
    assert not q.is_contiguous()
    mask = torch.randn(1, 3, 7, 5, dtype=torch.float64, requires_grad=True)
    grad_out = torch.randn(1, 3, 7, 4, dtype=torch.float64)
    grads = torch.autograd.grad(recomputed_bias_attention(q, k, v, mask, 0.7), (q, k, v, mask),
                                grad_out)
    expected = torch.autograd.grad(_explicit(q, k, v, mask, 0.7), (q, k, v, mask), grad_out)
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want)


def test_grouped_attention_routes_learnable_bias_through_recompute(monkeypatch):
    calls = []
    original = attention_grad.RecomputedBiasAttention.apply
    monkeypatch.setattr(attention_grad.RecomputedBiasAttention, 'apply',
                        lambda *a: calls.append(1) or original(*a))
    q, k, v = (torch.randn(2, 1, 3, 6, 4) for _ in range(3))
    bias = torch.randn(3, 6, 6, requires_grad=True)
    kernel = recomputed_bias_kernel
    out = grouped_attention(q, k, v, bias, scale=0.5, kernel=kernel)
    assert calls == [1] and out.requires_grad
    with torch.no_grad():
        torch.testing.assert_close(grouped_attention(q, k, v, bias, scale=0.5, kernel=kernel),
                                   out.detach())
    # Nothing to differentiate: SDPA.
    grouped_attention(q, k, v, bias.detach(), scale=0.5, kernel=kernel)
    assert calls == [1]


@pytest.mark.parametrize('family,size', [('CMT', (96, 80)), ('CrossFormer', (64, 96))])
def test_gradients_equal_explicit_attention(family, size, monkeypatch):
    # A whole tiny model in float64 (CrossFormer at a size that pads and masks its groups):
    # every parameter's gradient (the learnable biases included) through the recomputing
    # backward equals the one through the explicit formula.
    torch.manual_seed(0)
    plain = MODELS.build(dict(type=f'mmhybrid.{family}',
                              **CONTRACT_MODELS[family])).double().train()
    model = optimize_for_training(copy.deepcopy(plain), onednn_linear=False,
                                  gelu_batchnorm=False, space_to_depth=False)
    x = torch.randn(2, 3, *size, dtype=torch.float64)

    def grads(model):
        model.zero_grad(set_to_none=True)
        sum(o.square().mean() for o in model(x)).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    calls = []
    original = attention_grad.RecomputedBiasAttention.apply
    monkeypatch.setattr(attention_grad.RecomputedBiasAttention, 'apply',
                        lambda *a: calls.append(1) or original(*a))
    got = grads(model)
    assert len(calls) == sum(CONTRACT_MODELS[family]['arch']['depths'])
    monkeypatch.setattr(F, 'scaled_dot_product_attention',
                        lambda q, k, v, attn_mask=None, scale=None: _explicit(
                            q, k, v, attn_mask, q.shape[-1]**-0.5 if scale is None else scale))
    want = grads(plain)
    assert got.keys() == want.keys() and len(got) == len(list(model.parameters()))
    for name in got:
        torch.testing.assert_close(got[name], want[name], msg=name)


@pytest.mark.parametrize('momentum', [0.1, None])
@pytest.mark.parametrize('channels_last', [False, True])
def test_gelu_batchnorm_is_the_two_modules(momentum, channels_last):
    # Same outputs, gradients and running statistics as GELU then BatchNorm2d, bit for bit
    # (the same kernels run), while storing GELU's input only.
    torch.manual_seed(0)
    act, norm = nn.GELU(), nn.BatchNorm2d(5, momentum=momentum).train()
    norm.__class__ = GeluBatchNorm2d
    norm.weight.data.uniform_(0.5, 2)
    norm.bias.data.uniform_(-1, 1)
    ref_norm = nn.BatchNorm2d(5, momentum=momentum).train()
    ref_norm.load_state_dict(norm.state_dict())
    x = torch.randn(2, 5, 6, 7)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    grad = torch.randn(2, 5, 6, 7)
    results = []
    for bn, fused in ((norm, True), (ref_norm, False)):
        xi = x.clone().requires_grad_()
        for _ in range(2):  # twice: the running statistics and num_batches_tracked move on
            out = bn(xi) if fused else bn(act(xi))
        out.backward(grad)
        results.append([out.detach(), xi.grad, bn.weight.grad, bn.bias.grad, bn.running_mean,
                         bn.running_var, bn.num_batches_tracked])
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_gelu_batchnorm_saves_one_map():
    act, norm = nn.GELU(), nn.BatchNorm2d(4).train()
    fused = copy.deepcopy(norm)
    fused.__class__ = GeluBatchNorm2d
    x = torch.randn(1, 4, 16, 16, requires_grad=True)
    big = []

    def pack(t):
        if t.numel() == x.numel():
            big.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fused(x)
    assert len(big) == 1 and big[0] is x
    big.clear()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        norm(act(x))
    assert len({t.data_ptr() for t in big}) == 2


@pytest.mark.parametrize('case', ['eval', 'no_grad', 'autocast'])
def test_gelu_batchnorm_falls_back(case, monkeypatch):
    norm = nn.BatchNorm2d(4).train(case != 'eval')
    fused = copy.deepcopy(norm)
    fused.__class__ = GeluBatchNorm2d
    monkeypatch.setattr(GeluBatchNorm, 'apply', None)  # calling it would fail
    x = torch.randn(2, 4, 3, 3, requires_grad=True)
    with torch.set_grad_enabled(case != 'no_grad'), \
            torch.autocast('cpu', dtype=torch.bfloat16, enabled=case == 'autocast'):
        torch.testing.assert_close(fused(x), norm(F.gelu(x)))


@pytest.mark.parametrize('case', ['plain', 'sync', 'tanh', 'relu'])
def test_only_exact_gelu_then_batchnorm2d_pairs_are_swapped(case):
    module = nn.Module()
    module.act = nn.ReLU() if case == 'relu' else nn.GELU(
        approximate='tanh' if case == 'tanh' else 'none')
    module.norm = nn.SyncBatchNorm(4) if case == 'sync' else nn.BatchNorm2d(4)
    gelu_batchnorm_pairs(module, [('act', 'norm')])
    swapped = type(module.norm) is GeluBatchNorm2d
    assert swapped == (case == 'plain')
    assert isinstance(module.act, nn.Identity) == swapped


@pytest.mark.parametrize('channels_last', [False, True])
def test_pointwise_conv(channels_last):
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 10, 1)
    x = torch.randn(2, 6, 5, 7)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    out = pointwise_conv(conv, x)
    torch.testing.assert_close(out, conv(x), rtol=1e-5, atol=1e-5)
    assert out.is_contiguous(memory_format=torch.channels_last) == channels_last
    other = nn.Conv2d(6, 10, 1, stride=2)  # not a plain 1x1: the conv itself
    torch.testing.assert_close(pointwise_conv(other, x), other(x), rtol=0, atol=0)


@pytest.mark.parametrize('band_bytes', [1, 1 << 20])
def test_recomputed_bias_attention_single_image_and_head(band_bytes, monkeypatch):
    # One image, one head, a full mask: dS is written straight into the mask's gradient.
    monkeypatch.setattr(attention_grad, 'BACKWARD_BAND_BYTES', band_bytes)
    q, k, v, mask = _attention_inputs((1, 1, 7, 5), batch=1, heads=1)
    assert torch.autograd.gradcheck(
        lambda *t: recomputed_bias_attention(*t, scale=0.7), (q, k, v, mask))
