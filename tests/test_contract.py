"""The backbone contract (``HybridBackbone`` in mmhybrid/models/backbones/base.py: ``arch``,
``out_indices``, strides 4-32 at any input size, ``frozen_stages``, ``norm_eval``, ``with_cp``,
``init_cfg``), checked for every family on tiny custom archs."""
import copy
import math

import pytest
import torch
from mmcv.cnn.bricks import DropPath
from torch.nn.modules.batchnorm import _BatchNorm

from mmhybrid.registry import MODELS
from archs import CONTRACT_MODELS, model_type

pytestmark = pytest.mark.quick  # `make test-quick`

FAMILIES = sorted(CONTRACT_MODELS)


def build(name: str, **overrides) -> torch.nn.Module:
    # The scoped name, as configs write it: independent of the default scope other tests set.
    cfg = dict(type=f'mmhybrid.{model_type(name)}', **copy.deepcopy(CONTRACT_MODELS[name]))
    cfg.update(overrides)
    return MODELS.build(cfg)


def loss_of(outs) -> torch.Tensor:
    # Weighted so that every element of every output matters.
    return sum((o * torch.linspace(0.5, 1.5, o.numel()).view_as(o)).mean() for o in outs)


@pytest.fixture(params=FAMILIES)
def family(request):
    return request.param


@pytest.mark.parametrize('size', [(224, 224), (64, 96), (97, 131), (230, 302)])
def test_output_shapes(family, size):
    torch.manual_seed(0)
    model = build(family).eval()
    h, w = size
    with torch.no_grad():
        outs = model(torch.randn(2, 3, h, w))
    assert len(outs) == 4
    assert model.out_channels == tuple(o.shape[1] for o in outs)
    assert model.out_strides == (4, 8, 16, 32)
    for out, stride in zip(outs, model.out_strides):
        assert out.shape[0] == 2
        if h % 32 == 0 and w % 32 == 0:
            assert out.shape[2:] == (h // stride, w // stride)
        else:
            assert h // stride <= out.shape[2] <= math.ceil(h / stride)
            assert w // stride <= out.shape[3] <= math.ceil(w / stride)
        assert torch.isfinite(out).all()


@pytest.mark.parametrize('out_norm', [None, dict(type='LN', eps=1e-6)], ids=['raw', 'LN'])
def test_outputs_are_contiguous_nchw(family, out_norm):
    """Necks and heads receive plain contiguous NCHW maps. mmcv's CPU RoIAlign reads raw NCHW
    memory: fed a channels-last-strided map (what a permuted LayerNorm output or a conv on one
    gives) it silently returns wrong features, which kept every Mask R-CNN RoI head from learning
    before the outputs were made contiguous."""
    model = build(family, out_norm_cfg=out_norm)
    for mode in (model.train, model.eval):
        mode()
        outs = model(torch.randn(1, 3, 64, 96))
        assert all(o.is_contiguous() for o in outs)
        assert all(o.is_contiguous() for o in model.stage_outputs(torch.randn(1, 3, 64, 96)))


def test_every_real_arch_builds(family):
    cls = MODELS.get(f'mmhybrid.{model_type(family)}')
    assert cls.arch_zoo, 'a family must declare its official variants'
    for name in cls.arch_zoo:
        with torch.device('meta'):
            model = cls(arch=name)
        assert len(model.out_channels) == 4
        assert model.arch_name == name


def test_out_indices(family):
    indices = [-1, 1]
    model = build(family, out_indices=indices).eval()
    assert indices == [-1, 1], 'the caller\'s list must not be mutated'
    assert model.out_indices == (1, 3)
    full = build(family).eval()
    # Per-output norms exist only for the selected outputs (freshly initialised in both).
    missing, unexpected = full.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all(k.startswith('out_norms.') for k in missing)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        outs, ref = model(x), full(x)
    assert len(outs) == 2
    assert model.out_channels == (ref[1].shape[1], ref[3].shape[1])
    assert model.out_strides == (8, 32)
    torch.testing.assert_close(outs[0], ref[1], rtol=0, atol=0)
    torch.testing.assert_close(outs[1], ref[3], rtol=0, atol=0)


@pytest.mark.parametrize('frozen', [0, 2])
def test_frozen_stages(family, frozen):
    model = build(family, frozen_stages=frozen)
    model.train()
    frozen_modules = ([model.stem] if model.stem is not None else []) + \
        list(model.stages[:frozen + 1])
    for module in frozen_modules:
        for param in module.parameters():
            assert not param.requires_grad
        for sub in module.modules():
            assert not sub.training
    for stage in model.stages[frozen + 1:]:
        assert all(p.requires_grad for p in stage.parameters())
        assert all(m.training for m in stage.modules())


def test_norm_eval(family):
    model = build(family, norm_eval=True)
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    if not bns:
        pytest.skip(f'{family} has no BatchNorm layers')
    model.train()
    assert all(not m.training for m in bns)
    assert model.stages[-1].training
    before = [m.running_mean.clone() for m in bns]
    model(torch.randn(2, 3, 64, 64))
    for bn, mean in zip(bns, before):
        torch.testing.assert_close(bn.running_mean, mean, rtol=0, atol=0)


def test_with_cp_same_outputs_and_grads(family):
    torch.manual_seed(0)
    ref = build(family, drop_path_rate=0.1)
    cp_model = build(family, drop_path_rate=0.1, with_cp=True)
    cp_model.load_state_dict(ref.state_dict())
    ref.train()
    cp_model.train()
    x = torch.randn(2, 3, 64, 96)
    results = []
    for model in (ref, cp_model):
        xi = x.clone().requires_grad_(True)
        torch.manual_seed(1)
        outs = model(xi)
        loss_of(outs).backward()
        results.append((outs, xi.grad, {n: p.grad for n, p in model.named_parameters()}))
    (outs_a, gx_a, g_a), (outs_b, gx_b, g_b) = results
    for a, b in zip(outs_a, outs_b):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gx_a, gx_b, rtol=1e-5, atol=1e-6)
    for name, grad in g_a.items():
        torch.testing.assert_close(grad, g_b[name], rtol=1e-4, atol=1e-6, msg=name)


def test_every_parameter_gets_a_gradient(family):
    model = build(family)
    model.train()
    loss_of(model(torch.randn(2, 3, 64, 96))).backward()
    without = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not without, f'parameters without gradient: {without}'


def test_state_dict_round_trip(family):
    torch.manual_seed(0)
    model = build(family).eval()
    other = build(family).eval()
    other.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(model(x), other(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_drop_path_schedule(family):
    rate = 0.3
    model = build(family, drop_path_rate=rate)
    depths = model.arch_settings['depths']
    probs = [m.drop_prob for m in model.modules() if isinstance(m, DropPath)]
    expected = torch.linspace(0, rate, sum(depths)).tolist()[1:]
    assert probs == pytest.approx(expected)


def test_eval_is_deterministic(family):
    model = build(family).eval()
    x = torch.randn(1, 3, 70, 90)
    with torch.no_grad():
        a, b = model(x), model(x)
    for u, v in zip(a, b):
        assert torch.equal(u, v)


def test_float64(family):
    model = build(family).eval().double()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 64, dtype=torch.float64))
    assert all(o.dtype == torch.float64 for o in outs)


def test_invalid_settings(family):
    cls = MODELS.get(f'mmhybrid.{model_type(family)}')
    with pytest.raises(ValueError, match='Unknown'):
        build(family, arch='no-such-arch')
    with pytest.raises(ValueError, match='missing keys'):
        build(family, arch={cls.arch_keys[0]: CONTRACT_MODELS[family]['arch'][cls.arch_keys[0]]})
    bad = dict(CONTRACT_MODELS[family]['arch'], no_such_key=1)
    with pytest.raises(ValueError, match='unknown keys'):
        build(family, arch=bad)
    with pytest.raises(TypeError):
        build(family, arch=3)
    for indices in ([4], [-5], [], [0, 0], [1.5]):
        with pytest.raises(ValueError, match='out_indices'):
            build(family, out_indices=indices)
    for frozen in (4, -2, 1.0):
        with pytest.raises(ValueError, match='frozen_stages'):
            build(family, frozen_stages=frozen)
    with pytest.raises(ValueError, match='with_cp'):
        build(family, with_cp=[7])
    with pytest.raises(ValueError, match='drop_path_rate'):
        build(family, drop_path_rate=1.5)


def test_bad_inputs(family):
    model = build(family).eval()
    with pytest.raises(ValueError, match='4-D'):
        model(torch.randn(3, 64, 64))
    with pytest.raises(ValueError, match='input channels'):
        model(torch.randn(1, 4, 64, 64))
    with pytest.raises(ValueError, match='empty'):
        model(torch.randn(0, 3, 64, 64))
    with pytest.raises(TypeError, match='floating point'):
        model(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(TypeError):
        model([torch.randn(1, 3, 64, 64)])


def test_bf16_autocast_forward_backward(family):
    model = build(family)
    model.train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        outs = model(torch.randn(1, 3, 64, 64))
    assert all(torch.isfinite(o.float()).all() for o in outs)
    loss_of([o.float() for o in outs]).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_out_norm_option(family):
    model = build(family, out_norm_cfg=dict(type='LN', eps=1e-6), out_indices=(1, 2)).eval()
    assert sorted(model.out_norms.keys()) == ['1', '2']
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        raw = model.stage_outputs(x)
        outs = model(x)
    normed = model.out_norms['1'](raw[1])
    torch.testing.assert_close(outs[0], normed)


def _sdpa_kernels(model, x):
    """Names of the scaled-dot-product-attention kernels one eval forward runs."""
    from torch.profiler import ProfilerActivity, profile
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        model(x)
    return {e.key for e in prof.key_averages() if 'scaled_dot_product' in e.key}


@pytest.mark.parametrize('size', [(64, 64), (97, 131)])
def test_attention_takes_the_fused_kernel(family, size):
    """Inference never falls back to SDPA's math path (which materialises the logits): masks are
    4-D and q/k/v have a unit last-dim stride, as PyTorch's fused CPU kernel requires. Checked at
    an unpadded and a padded size (CrossFormer and HAT-Net/TransCNN add padding masks).
    (CrossFormer's windows attend through the explicit formula, its ICLR'22 LDA through SDPA.)"""
    model = build(family).eval()
    kernels = _sdpa_kernels(model, torch.randn(2, 3, *size))
    if family in ('VAN', 'CrossFormer/pp'):  # no softmax attention; windows only (explicit)
        assert not kernels
        return
    assert any('flash' in k for k in kernels), kernels
    assert not any('math' in k for k in kernels), kernels


@pytest.mark.parametrize('size', [(64, 96), (97, 131)])
def test_channels_last_changes_only_rounding(family, size):
    torch.manual_seed(0)
    reference = build(family, channels_last=False)
    fast = build(family, channels_last=True)
    fast.load_state_dict(reference.state_dict())
    assert fast.uses_channels_last(torch.empty(1)) and not reference.uses_channels_last(
        torch.empty(1))
    x = torch.randn(2, 3, *size)
    for model in (reference, fast):
        model.train()
        outs = model(x)
        assert all(o.is_contiguous() for o in outs)  # NCHW whatever the internal layout
        loss_of(outs).backward()
    with torch.no_grad():
        for a, b in zip(reference.eval()(x), fast.eval()(x)):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)
    for (name, p), q in zip(reference.named_parameters(), fast.parameters()):
        if p.grad is not None:
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-3, atol=1e-4, msg=name)


def test_channels_last_default_and_validation(family):
    cls = MODELS.get(f'mmhybrid.{model_type(family)}')
    model = build(family)
    assert model.channels_last is None
    assert model.uses_channels_last(torch.empty(1)) == cls.default_channels_last
    assert not model.uses_channels_last(torch.empty(1, device='meta'))  # CPU only by default
    with pytest.raises(TypeError, match='channels_last'):
        build(family, channels_last='yes')
