"""Eager inference paths that replace a chain of calls by fewer: a linear
layer with its GELU applied as oneDNN writes the product (``linear_act``: the token MLP, CMT's
IRFFN), and attention over few keys in several groups as explicit products in chunks
(``short_key_attention``). Each must give the plain chain's values, and step aside where it
does not apply (gradients, hooks, other activations, many keys, one group)."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmhybrid.models.layers import Mlp, grouped_attention, pointwise_conv
from mmhybrid.models.layers import attention as attention_module
from mmhybrid.models.layers import fusion
from mmhybrid.models.layers import linear as linear_layers
from mmhybrid.models.layers.fusion import linear_act, plain_calls

ONEDNN_GELU = linear_layers.ONEDNN_LINEAR


def _gelu_linear_calls(fn):
    """The result of ``fn()`` and how many products ran with a fused GELU."""
    calls = []
    original = torch.ops.mkldnn._linear_pointwise

    class Spy:
        def __call__(self, *args):
            calls.append(args[3])
            return original(*args)

        def __getattr__(self, name):
            return getattr(original, name)

    torch.ops.mkldnn._linear_pointwise = Spy()
    try:
        out = fn()
    finally:
        torch.ops.mkldnn._linear_pointwise = original
    return out, calls.count('gelu')


@pytest.fixture
def onednn_products(monkeypatch):
    monkeypatch.setattr(linear_layers, 'ENABLED', True)


@pytest.mark.skipif(not ONEDNN_GELU, reason='this torch build has no oneDNN linear')
@pytest.mark.parametrize('approximate', ['none', 'tanh'])
def test_linear_act_fuses_gelu_at_inference(approximate, onednn_products):
    torch.manual_seed(0)
    x, weight, bias = torch.randn(2, 9, 16), torch.randn(40, 16), torch.randn(40)
    act = nn.GELU(approximate=approximate)
    expected = act(F.linear(x, weight, bias))
    with torch.no_grad():
        out, fused = _gelu_linear_calls(lambda: linear_act(x, weight, bias, act))
    assert fused == 1
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('case', ['grad', 'relu', 'f_linear', 'act_hook', 'global_hook'])
def test_linear_act_without_fusion(case, monkeypatch):
    monkeypatch.setattr(linear_layers, 'ENABLED', case != 'f_linear')
    torch.manual_seed(0)
    x = torch.randn(5, 8, requires_grad=case == 'grad')
    weight, bias = torch.randn(12, 8), torch.randn(12)
    act = nn.ReLU() if case == 'relu' else nn.GELU()
    expected = act(F.linear(x, weight, bias))
    # A hook on the activation (its own or a global one): the product does not replace it.
    handle = (act.register_forward_hook(lambda *a: None) if case == 'act_hook' else
              nn.modules.module.register_module_forward_hook(lambda *a: None)
              if case == 'global_hook' else None)
    try:
        with torch.set_grad_enabled(case == 'grad'):
            out, fused = _gelu_linear_calls(lambda: linear_act(x, weight, bias, act))
    finally:
        if handle is not None:
            handle.remove()
    assert fused == 0
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    if case == 'grad':  # the plain chain, differentiable
        out.sum().backward()
        assert x.grad is not None


def test_mlp_fuses_only_plain_calls(onednn_products):
    torch.manual_seed(0)
    mlp = Mlp(16, 48, dict(type='GELU')).eval()
    x = torch.randn(2, 30, 16)
    expected = mlp.fc2(F.gelu(mlp.fc1(x)))
    with torch.no_grad():
        out, fused = _gelu_linear_calls(lambda: mlp(x))
    assert fused == (1 if ONEDNN_GELU else 0)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    # A pre-hook that sets fc1's weight (as pruning does) runs: the module is called.
    seen = []
    handle = mlp.fc1.register_forward_pre_hook(lambda module, args: seen.append(1))
    assert not plain_calls(mlp.fc1, mlp.act)
    with torch.no_grad():
        out, fused = _gelu_linear_calls(lambda: mlp(x))
    handle.remove()
    assert seen == [1] and fused == 0
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert plain_calls(mlp.fc1, mlp.act)
    # A replaced fc1 (another module with a weight) is called as it is.
    mlp.fc1 = ScaledLinear(16, 48)
    mlp.fc1.load_state_dict(dict(weight=torch.zeros(48, 16), bias=torch.ones(48)))
    with torch.no_grad():
        out, fused = _gelu_linear_calls(lambda: mlp(x))
    assert fused == 0
    torch.testing.assert_close(out, mlp.fc2(F.gelu(torch.full((2, 30, 48), 2.))))


class ScaledLinear(nn.Linear):
    """A linear layer whose forward is not ``F.linear`` (twice its output)."""

    def forward(self, x):
        return 2 * super().forward(x)


@pytest.mark.parametrize('channels_last', [False, True])
def test_pointwise_conv_with_act(channels_last, onednn_products):
    torch.manual_seed(0)
    conv, act = nn.Conv2d(6, 10, 1), nn.GELU()
    x = torch.randn(2, 6, 5, 7)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    expected = act(conv(x))
    with torch.no_grad():
        out, fused = _gelu_linear_calls(lambda: pointwise_conv(conv, x, act))
    assert fused == (1 if channels_last and ONEDNN_GELU else 0)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    grad_out = pointwise_conv(conv, x.requires_grad_(), act)  # training: the plain chain
    torch.testing.assert_close(grad_out, expected, rtol=1e-5, atol=1e-5)
    assert grad_out.requires_grad


def test_fusion_switch_keeps_the_modules(monkeypatch):
    monkeypatch.setattr(fusion, 'ENABLED', False)
    torch.manual_seed(0)
    mlp = Mlp(8, 16, dict(type='GELU')).eval()
    x = torch.randn(3, 8)
    with torch.no_grad():
        out, fused = _gelu_linear_calls(lambda: mlp(x))
    assert fused == 0
    torch.testing.assert_close(out, mlp.fc2(F.gelu(mlp.fc1(x))))


# ---------------------------------------------------------------------- short-key attention


def _explicit(q, k, v, mask, scale):
    logits = q @ k.transpose(-1, -2) * scale
    if mask is not None:
        logits = logits + mask
    return logits.softmax(-1) @ v


def _short_key_calls(monkeypatch):
    calls = []
    original = attention_module.short_key_attention
    monkeypatch.setattr(attention_module, 'short_key_attention',
                        lambda *a: calls.append(a[0].shape) or original(*a))
    return calls


@pytest.mark.parametrize('batch,groups', [(1, 5), (3, 4), (2, 1)])
@pytest.mark.parametrize('masks', ['none', 'bias', 'padding', 'both'])
# Chunks of one group, of two (the last one shorter), all groups in one.
@pytest.mark.parametrize('chunk_bytes', [3 * 10 * 7 * 4, 2 * 3 * 10 * 7 * 4, 2**20])
def test_short_key_attention_is_the_formula(batch, groups, masks, chunk_bytes, monkeypatch):
    monkeypatch.setattr(attention_module, 'SHORT_KEY_CHUNK_BYTES', chunk_bytes)
    calls = _short_key_calls(monkeypatch)
    torch.manual_seed(0)
    heads, num_q, num_k, dim = 3, 10, 7, 8
    # q, k, v as split_heads gives them: views of (B, G, N, heads * d) tokens.
    q, k, v = (torch.randn(batch, groups, n, heads, dim).transpose(2, 3)
               for n in (num_q, num_k, num_k))
    bias = torch.randn(heads, num_q, num_k) if masks in ('bias', 'both') else None
    padding = None
    if masks in ('padding', 'both'):
        padding = torch.rand(groups, num_k) > 0.6
        padding[0] = True  # a group of padding only keeps a finite softmax
    with torch.no_grad():
        out = grouped_attention(q, k, v, bias, padding, scale=0.4)
    assert len(calls) == 1
    mask = torch.zeros(1, 1, heads, num_q, num_k)
    if bias is not None:
        mask = mask + bias
    if padding is not None:
        mask = mask + attention_module.padding_bias(padding, q.dtype)[None]  # 1, G, 1, 1, Nk
    torch.testing.assert_close(out, _explicit(q, k, v, mask, 0.4), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('case', ['grad', 'one_group', 'many_keys', 'switch', 'float64'])
def test_short_key_attention_steps_aside(case, monkeypatch):
    calls = _short_key_calls(monkeypatch)
    if case == 'switch':
        monkeypatch.setattr(attention_module, 'SHORT_KEY_ATTENTION', False)
    torch.manual_seed(0)
    groups = 1 if case == 'one_group' else 4
    num_k = attention_module.SHORT_KEYS + 1 if case == 'many_keys' else 9
    dtype = torch.float64 if case == 'float64' else torch.float32
    q = torch.randn(1, groups, 2, 6, 4, dtype=dtype)
    k, v = (torch.randn(1, groups, 2, num_k, 4, dtype=dtype) for _ in range(2))
    with torch.set_grad_enabled(case == 'grad'):
        grouped_attention(q, k, v)
    assert calls == []
    with torch.no_grad():  # the same call under no_grad, as a control
        grouped_attention(q, k, v)
    assert len(calls) == (case in ('grad', ))
