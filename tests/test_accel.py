"""mmhybrid.accel: ``optimize_for_inference`` and ``optimize_for_training`` on every family.

The optimised models must compute what the plain models compute (outputs, and for training
gradients and running statistics), change no model file's behaviour, decide once, and say what
they do with hooks. The fast paths themselves are tested next to their family (test_cmt.py,
test_crossformer.py, test_van.py) and in test_memory.py / test_accel_linear.py.
"""
import copy
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import mmhybrid
from archs import CONTRACT_MODELS
from helpers import build_with_random_norms
from mmhybrid.accel import internals, optimize_for_inference, optimize_for_training
from mmhybrid.accel.attention import short_key_attention, short_key_kernel
from mmhybrid.accel.layers import FastMlp
from mmhybrid.accel.linear import OneDNNLinear, OneDNNTrainingLinear
from mmhybrid.accel.ops import linear_act
from mmhybrid.models.layers import Mlp, grouped_attention, padding_bias

FAMILIES = sorted(CONTRACT_MODELS)
REPO = Path(__file__).resolve().parents[1]


def build(name: str, **overrides) -> nn.Module:
    return build_with_random_norms(name, **overrides)


def assert_outputs_close(got, want, tol=1e-5):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.is_contiguous()
        torch.testing.assert_close(g, w, rtol=tol, atol=tol * w.abs().max().item())


# ---------------------------------------------------------------------- inference
@pytest.mark.parametrize('name', FAMILIES)
@pytest.mark.parametrize('channels_last', [None, False])
@pytest.mark.parametrize('onednn', [False, True])
def test_optimized_outputs_equal_the_plain_model(name, channels_last, onednn):
    plain = build(name, channels_last=channels_last).eval()
    optimized = optimize_for_inference(copy.deepcopy(plain), onednn_linear=onednn)
    assert optimized.optimized and optimized.deployed and not optimized.training
    assert not any(p.requires_grad for p in optimized.parameters())
    linears = {type(m) for m in optimized.modules() if isinstance(m, nn.Linear)}
    assert linears <= ({OneDNNLinear} if onednn and internals.ONEDNN_LINEAR else {nn.Linear})
    for size in ((97, 131), (64, 64), (33, 47)):
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            assert_outputs_close(optimized(x), plain(x))


def test_plain_model_files_have_no_fast_paths():
    # Building a backbone swaps nothing in: every module is a plain one of mmhybrid.models,
    # torch or mmcv, whatever the machine.
    for name in FAMILIES:
        for module in build(name).modules():
            assert not type(module).__module__.startswith('mmhybrid.accel'), (name, module)


def test_a_detector_like_model_is_optimized_in_place():
    # Any module holding backbones: the backbones are swapped, everything else stays.
    model = nn.ModuleDict(dict(backbone=build('CMT'), neck=nn.Conv2d(8, 8, 1)))
    model.train()
    assert optimize_for_inference(model) is model
    assert not model.training and type(model['neck']) is nn.Conv2d
    assert model['neck'].weight.requires_grad  # not ours: untouched
    assert model['backbone'].optimized
    assert optimize_for_inference(model) is model  # twice: nothing more happens


def test_optimized_model_only_predicts():
    model = optimize_for_inference(build('VAN'))
    with pytest.raises(RuntimeError, match='optimize_for_inference'):
        model.train()
    with pytest.raises(RuntimeError, match='before switch_to_deploy'):
        model.load_state_dict(build('VAN').state_dict())
    with pytest.raises(RuntimeError, match='optimised for inference'):
        optimize_for_training(model)
    model.eval()  # eval stays allowed


@pytest.mark.parametrize('bad', [nn.Conv2d(3, 3, 1), 'model', None])
def test_a_model_without_backbones_is_a_clear_error(bad):
    with pytest.raises(TypeError, match='mmhybrid backbone|torch.nn.Module'):
        optimize_for_inference(bad)
    with pytest.raises(TypeError, match='mmhybrid backbone|torch.nn.Module'):
        optimize_for_training(bad)


def test_onednn_linear_must_be_a_bool():
    with pytest.raises(TypeError, match='onednn_linear'):
        optimize_for_inference(build('VAN'), onednn_linear='yes')


def test_the_package_exposes_the_entry_points():
    assert mmhybrid.optimize_for_inference is optimize_for_inference
    assert mmhybrid.optimize_for_training is optimize_for_training
    with pytest.raises(AttributeError):
        mmhybrid.no_such_name


def test_benchmark_reports_optimized_rows():
    from mmhybrid.utils import benchmark
    row = dict(spec='cmt:small', size=[224, 224], device='cpu', dtype='fp32', mode='fwd',
               attention='sdpa', batch=1, median_s=0.06, images_per_s=1 / 0.06,
               peak_mem_mb=40.0, gflops_per_s=130.0)
    optimized = dict(row, optimize=True, median_s=0.05, images_per_s=20.0, peak_mem_mb=35.0,
                     ab_plain_median_s=0.066, ab_optimized_median_s=0.055)
    report = benchmark.to_markdown([row, optimized], 'cmd')
    assert '| sdpa, optimised |' in report
    assert '| cmt:small | 224x224 | fp32 | 66.0 | 55.0 | 1.20x | 40 / 35 |' in report
    assert 'optimize_for_inference' not in benchmark.to_markdown([row], 'cmd')
    assert benchmark.report_key('cpu', ['fwd'], False, optimize=True) == 'cpu-optimize'
    assert benchmark.report_key('cpu', ['fwd'], True, optimize=True) == 'cpu-compile'


def test_benchmark_measures_optimized_against_plain_in_one_process():
    from mmhybrid.utils import benchmark
    result = benchmark.measure('cmt:tiny', (64, 64), 'cpu', 'fp32', 'fwd', reference=False,
                               warmup=1, repeat=2, batch=1, kwargs={}, optimize=True)
    assert result['optimize'] and result['ab_plain_median_s'] > 0
    assert result['ab_optimized_median_s'] > 0
    with pytest.raises(ValueError, match='inference only'):
        benchmark.measure('cmt:tiny', (64, 64), 'cpu', 'fp32', 'fwdbwd', reference=False,
                          warmup=1, repeat=1, batch=1, kwargs={}, optimize=True)


# ---------------------------------------------------------------------- hooks
@pytest.mark.parametrize('name, suffix', [('CrossFormer', 'blocks.1.mlp.fc1'),
                                          ('UniFormer', 'blocks.0.mlp.fc1'),
                                          ('VAN', 'blocks.0.attn.proj_1'),
                                          ('CMT', 'blocks.0.ffn.act1')])
def test_a_hooked_module_keeps_its_plain_parents(name, suffix):
    # A module whose fast form would replace a hooked submodule's call (or overwrite its
    # output) stays plain: the hook runs and sees an output that stays as it saw it.
    plain = build(name).eval()
    model = copy.deepcopy(plain)
    hooked = [m for n, m in model.named_modules() if n.endswith(suffix)][-1]
    seen = []
    hooked.register_forward_hook(lambda mod, args, out: seen.append((out, out.clone())))
    optimize_for_inference(model)
    parents = [m for n, m in model.named_modules() if suffix.startswith(n.split('.', 2)[-1])
               and hooked in list(m.modules()) and m is not hooked and n.count('.') >= 3]
    assert parents and all(not type(m).__module__.startswith('mmhybrid.accel')
                           for m in parents)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert_outputs_close(model(x), plain(x))
    assert seen
    for out, copy_at_hook in seen:
        assert torch.equal(out, copy_at_hook)


def test_a_global_hook_keeps_every_fused_module_plain():
    handle = nn.modules.module.register_module_forward_hook(lambda *args: None)
    try:
        model = optimize_for_inference(build('CMT'))
    finally:
        handle.remove()
    swapped = {type(m).__name__ for m in model.modules()
               if type(m).__module__.startswith('mmhybrid.accel')}
    assert swapped <= {'OneDNNLinear'}


def test_hooks_registered_after_optimizing_may_not_run():
    # Documented: the fused IRFFN no longer calls its activation module.
    model = optimize_for_inference(build('CMT'))
    seen = []
    model.stages[0].blocks[0].ffn.act1.register_forward_hook(lambda *args: seen.append(1))
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    assert seen == []


# ---------------------------------------------------------------------- training
def _train_step(model, x, seed=1):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)  # the same drop-path draws
    outs = model(x)
    sum((o * torch.linspace(0.5, 1.5, o.numel()).view_as(o)).mean() for o in outs).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return [o.detach() for o in outs], grads


@pytest.mark.parametrize('name', FAMILIES)
def test_training_savers_keep_outputs_gradients_and_statistics(name):
    plain = build(name, drop_path_rate=0.1).train()
    saver = optimize_for_training(copy.deepcopy(plain))
    x = torch.randn(2, 3, 67, 83)
    for _ in range(2):
        outs, grads = _train_step(saver, x)
        want_outs, want_grads = _train_step(plain, x)
        assert_outputs_close(outs, want_outs, 1e-4)
        assert grads.keys() == want_grads.keys()
        assert len(grads) == len(list(plain.parameters()))
        for key in grads:
            torch.testing.assert_close(grads[key], want_grads[key], rtol=1e-3, atol=1e-5,
                                       msg=key)
    for (key, a), b in zip(plain.state_dict().items(), saver.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=key)  # running statistics
    with torch.no_grad():
        assert_outputs_close(saver.eval()(x), plain.eval()(x))


def test_training_savers_are_the_requested_ones():
    model = optimize_for_training(build('CMT'), onednn_linear=True, gelu_batchnorm=False,
                                  recomputed_attention=False)
    kinds = {type(m).__name__ for m in model.modules()}
    assert 'GeluBatchNorm2d' not in kinds
    assert ('OneDNNTrainingLinear' in kinds) == internals.ONEDNN_LINEAR
    assert all(getattr(m, 'kernel', None) is None for m in model.modules())
    model = optimize_for_training(build('CMT'), onednn_linear=False)
    kinds = {type(m).__name__ for m in model.modules()}
    assert 'GeluBatchNorm2d' in kinds
    assert not any(isinstance(m, OneDNNTrainingLinear) for m in model.modules())


# ---------------------------------------------------------------------- fused ops
def _gelu_linear_calls(fn, monkeypatch):
    """The result of ``fn()`` and the activations oneDNN's products applied."""
    calls = []
    original = internals.linear_pointwise
    monkeypatch.setattr(internals, 'linear_pointwise',
                        lambda *args: calls.append(args[3] if len(args) > 3 else 'none')
                        or original(*args))
    return fn(), calls


@pytest.mark.skipif(not internals.ONEDNN_LINEAR, reason='no oneDNN linear in this build')
@pytest.mark.parametrize('approximate', ['none', 'tanh'])
def test_linear_act_applies_gelu_as_the_product_writes(approximate, monkeypatch):
    torch.manual_seed(0)
    x, weight, bias = torch.randn(2, 9, 16), torch.randn(40, 16), torch.randn(40)
    act = nn.GELU(approximate=approximate)
    expected = act(F.linear(x, weight, bias))
    with torch.no_grad():
        out, calls = _gelu_linear_calls(lambda: linear_act(x, weight, bias, act, True),
                                        monkeypatch)
    assert calls == ['gelu']
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # without oneDNN: F.linear and GELU in place
        out, calls = _gelu_linear_calls(lambda: linear_act(x, weight, bias, act, False),
                                        monkeypatch)
    assert calls == []
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_fast_mlp_equals_the_mlp_and_calls_a_replaced_fc1():
    torch.manual_seed(0)
    mlp = Mlp(16, 48, dict(type='GELU')).eval()
    fast = copy.deepcopy(mlp)
    fast.__class__ = FastMlp
    x = torch.randn(2, 30, 16)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), mlp(x), rtol=1e-5, atol=1e-5)
        fast.fc1.__class__ = OneDNNLinear
        torch.testing.assert_close(fast(x), mlp(x), rtol=1e-5, atol=1e-5)


def _explicit(q, k, v, mask, scale):
    logits = q @ k.transpose(-1, -2) * scale
    if mask is not None:
        logits = logits + mask
    return logits.softmax(-1) @ v


@pytest.mark.parametrize('batch,groups', [(1, 5), (3, 4), (2, 1)])
@pytest.mark.parametrize('masks', ['none', 'bias', 'padding', 'both'])
# Chunks of one group, of two (the last one shorter), all groups in one.
@pytest.mark.parametrize('chunk_bytes', [3 * 10 * 7 * 4, 2 * 3 * 10 * 7 * 4, 2**20])
def test_short_key_attention_is_the_formula(batch, groups, masks, chunk_bytes, monkeypatch):
    from mmhybrid.accel import attention
    monkeypatch.setattr(attention, 'SHORT_KEY_CHUNK_BYTES', chunk_bytes)
    calls = []
    monkeypatch.setattr(attention, 'short_key_attention',
                        lambda *a: calls.append(1) or short_key_attention(*a))
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
        out = grouped_attention(q, k, v, bias, padding, scale=0.4, kernel=short_key_kernel)
    assert len(calls) == (batch * groups > 1)  # one group: SDPA
    mask = torch.zeros(1, 1, heads, num_q, num_k)
    if bias is not None:
        mask = mask + bias
    if padding is not None:
        mask = mask + padding_bias(padding, q.dtype)[None]  # 1, G, 1, 1, Nk
    torch.testing.assert_close(out, _explicit(q, k, v, mask, 0.4), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('case', ['many_keys', 'float64'])
def test_short_key_kernel_steps_aside(case, monkeypatch):
    from mmhybrid.accel import attention
    calls = []
    monkeypatch.setattr(attention, 'short_key_attention', lambda *a: calls.append(1))
    num_k = attention.SHORT_KEYS + 1 if case == 'many_keys' else 9
    dtype = torch.float64 if case == 'float64' else torch.float32
    q = torch.randn(1, 4, 2, 6, 4, dtype=dtype)
    k, v = (torch.randn(1, 4, 2, num_k, 4, dtype=dtype) for _ in range(2))
    with torch.no_grad():
        out = grouped_attention(q, k, v, kernel=short_key_kernel)
    assert calls == []
    torch.testing.assert_close(out, grouped_attention(q, k, v))


def test_the_ablation_script_knows_every_fast_path():
    # benchmarks/fast_path_ablation.py (docs/benchmarks.md) puts each fast path back to the plain
    # module; every one of its paths is found in some optimised family, and once all are put
    # back, no module of mmhybrid.accel is left.
    import sys
    sys.path.insert(0, str(REPO / 'benchmarks'))
    import fast_path_ablation as ablation
    found = dict.fromkeys(ablation.PATHS, 0)
    for name in CONTRACT_MODELS:
        model = optimize_for_inference(build(name), onednn_linear=False)
        for path in ablation.PATHS:
            found[path] += ablation.without(model, path)[1]
        left = [type(m).__name__ for m in model.modules() if type(m).__module__.startswith(
            'mmhybrid.accel')]
        assert not left, (name, left)
    assert all(found.values()), found
