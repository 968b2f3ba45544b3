"""mmhybrid.accel.linear: linear layers on oneDNN's products in CPU inference and training,
``F.linear`` everywhere else, and the default that chooses them."""
import pytest
import torch
import torch.nn as nn
from torch.profiler import profile
from torch.utils.flop_counter import FlopCounterMode

import mmhybrid
from mmhybrid.accel import internals
from mmhybrid.accel import linear as linear_layers
from mmhybrid.accel.linear import OneDNNLinear, OneDNNTrainingLinear
from mmhybrid.accel.ops import pointwise_conv
from mmhybrid.registry import MODELS

ONEDNN = internals.ONEDNN_LINEAR
ONEDNN_OP = 'mkldnn::_linear_pointwise'
needs_onednn = pytest.mark.skipif(not ONEDNN, reason='this torch build has no oneDNN linear')


def ops_run(fn):
    """The result of ``fn()`` and the names of the ops it ran."""
    with profile() as prof:
        out = fn()
    return out, {event.name for event in prof.events()}


def reference_pair(bias=True, cls=OneDNNTrainingLinear):
    torch.manual_seed(0)
    layer = cls(48, 80, bias=bias)
    plain = nn.Linear(48, 80, bias=bias)
    plain.load_state_dict(layer.state_dict())
    return layer, plain


@needs_onednn
@pytest.mark.parametrize('bias', [True, False])
@pytest.mark.parametrize('shape', [(300, 48), (2, 7, 9, 48), (0, 48)])
@pytest.mark.parametrize('cls', [OneDNNLinear, OneDNNTrainingLinear])
def test_inference_runs_onednn_and_equals_f_linear(bias, shape, cls):
    layer, plain = reference_pair(bias, cls)
    x = torch.randn(shape)
    with torch.no_grad():
        out, ops = ops_run(lambda: layer(x))
        expected = plain(x)
    assert (ONEDNN_OP in ops) == (x.numel() > 0)  # an empty input keeps F.linear
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


@needs_onednn
def test_strided_inputs_and_weights():
    # Token views of NCHW and channels-last maps, a transposed weight (a 1x1 conv's).
    torch.manual_seed(0)
    weight, bias = torch.randn(24, 16), torch.randn(24)
    tokens = torch.randn(2, 16, 35).transpose(1, 2)
    nhwc = torch.randn(2, 16, 5, 7).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        out, ops = ops_run(lambda: linear_layers.inner_product(
            tokens, weight.t().contiguous().t(), bias))
        assert ONEDNN_OP in ops
        torch.testing.assert_close(out, nn.functional.linear(tokens, weight, bias))
        conv = nn.Conv2d(16, 24, 1)
        conv.weight.copy_(weight[:, :, None, None])
        conv.bias.copy_(bias)
        out, ops = ops_run(lambda: pointwise_conv(conv, nhwc, onednn=True))
        assert ONEDNN_OP in ops
        expected = nn.functional.conv2d(nhwc, weight[:, :, None, None], bias)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


@needs_onednn
@pytest.mark.parametrize('bias', [True, False])
@pytest.mark.parametrize('shape', [(5, 3, 48), (300, 48)])
def test_training_runs_onednn_with_the_gradients_of_f_linear(bias, shape):
    layer, plain = reference_pair(bias)
    x = torch.randn(shape, requires_grad=True)
    x_plain = x.detach().clone().requires_grad_()
    weights = torch.linspace(-1, 1, 80)

    def step():
        out = layer(x)
        out += 1  # in place on the result, as the residual additions do
        ((out - 1).square() * weights).sum().backward()

    _, ops = ops_run(step)
    assert ONEDNN_OP in ops and 'aten::addmm' not in ops and 'aten::mm' not in ops
    (plain(x_plain).square() * weights).sum().backward()
    torch.testing.assert_close(x.grad, x_plain.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer.weight.grad, plain.weight.grad, rtol=1e-5, atol=1e-4)
    if bias:
        torch.testing.assert_close(layer.bias.grad, plain.bias.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('needs', ['input', 'weight'])
def test_training_with_a_frozen_weight_or_a_plain_input(needs):
    layer, plain = reference_pair()
    for module in (layer, plain):
        module.requires_grad_(needs == 'weight')
    x = torch.randn(7, 48, requires_grad=needs == 'input')
    x_plain = x.detach().clone().requires_grad_(needs == 'input')
    layer(x).square().sum().backward()
    plain(x_plain).square().sum().backward()
    if needs == 'input':
        torch.testing.assert_close(x.grad, x_plain.grad, rtol=1e-5, atol=1e-5)
        assert layer.weight.grad is None
    else:
        torch.testing.assert_close(layer.weight.grad, plain.weight.grad, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(layer.bias.grad, plain.bias.grad, rtol=1e-5, atol=1e-5)


def test_second_order_gradients_equal_f_linear():
    # A gradient penalty differentiates the backward itself (create_graph=True).
    layer, plain = reference_pair()
    penalties = []
    for module in (layer, plain):
        x = torch.randn(6, 48, generator=torch.Generator().manual_seed(3), requires_grad=True)
        (grad_x,) = torch.autograd.grad(module(x).square().sum(), x, create_graph=True)
        grad_x.square().sum().backward()
        penalties.append((grad_x.detach(), module.weight.grad.clone()))
    for a, b in zip(*penalties):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)


def test_torch_func_transforms_keep_f_linear():
    layer, plain = reference_pair()
    x = torch.randn(4, 48)
    grads = [torch.func.grad(lambda t, m=m: m(t).square().sum())(x) for m in (layer, plain)]
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize('case', ['float64', 'autocast', 'mkldnn_off', 'dispatch_mode'])
def test_everything_else_keeps_f_linear(case):
    layer, plain = reference_pair()
    x = torch.randn(6, 48)
    if case == 'float64':
        layer.double(), plain.double()
        x = x.double()

    def run(module):
        with torch.no_grad():
            if case == 'autocast':
                with torch.autocast('cpu', dtype=torch.bfloat16):
                    return module(x)
            if case == 'mkldnn_off':
                torch.backends.mkldnn.enabled = False
                try:
                    return module(x)
                finally:
                    torch.backends.mkldnn.enabled = True
            if case == 'dispatch_mode':  # e.g. the FLOP counter: it sees aten's linear
                with FlopCounterMode(display=False) as counter:
                    out = module(x)
                assert counter.get_total_flops() == 2 * 6 * 48 * 80
                return out
            return module(x)

    out, ops = ops_run(lambda: run(layer))
    assert ONEDNN_OP not in ops
    expected = run(plain)
    assert out.dtype == expected.dtype
    torch.testing.assert_close(out, expected)


def test_is_an_nn_linear_with_its_keys_and_hooks():
    layer, _ = reference_pair()
    assert isinstance(layer, nn.Linear)
    assert list(layer.state_dict()) == ['weight', 'bias']
    seen = []
    layer.register_forward_hook(lambda mod, args, out: seen.append(out.shape))
    with torch.no_grad():
        layer(torch.randn(3, 48))
    assert seen == [torch.Size([3, 80])]


@needs_onednn
def test_weight_gradient_in_chunks_of_rows(monkeypatch):
    # 1 KB chunks of rows of 48 + 80 floats: 2 rows each, 151 products for 301 rows.
    monkeypatch.setattr(linear_layers, 'GRAD_WEIGHT_CHUNK_BYTES', 1024)
    layer, plain = reference_pair()
    x = torch.randn(301, 48)
    layer(x).square().sum().backward()
    plain(x).square().sum().backward()
    torch.testing.assert_close(layer.weight.grad, plain.weight.grad, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize('setting, vendor, capability, expected', [
    (None, 'AuthenticAMD', 'AVX512', True),  # MKL runs its AVX2 code there
    (None, 'AuthenticAMD', 'AVX2', False),
    (None, 'GenuineIntel', 'AVX512', False),  # MKL chooses AVX-512 itself
    (None, '', 'AVX512', False),  # no /proc/cpuinfo: nothing known
    (None, 'AuthenticAMD', 'DEFAULT', False),
    ('1', 'GenuineIntel', 'AVX2', True),
    ('0', 'AuthenticAMD', 'AVX512', False),
    (' 1 ', '', 'DEFAULT', True),
])
def test_the_default_follows_the_environment_then_the_cpu(setting, vendor, capability,
                                                          expected):
    environ = {} if setting is None else {linear_layers.ENV_SWITCH: setting}
    assert linear_layers.onednn_linear_default(environ, vendor, capability) is expected


@pytest.mark.parametrize('setting', ['yes', '2', 'true'])
def test_a_bad_switch_value_is_an_error_that_names_it(setting):
    with pytest.raises(ValueError, match=f'MMHYBRID_ONEDNN_LINEAR.*{setting}'):
        linear_layers.onednn_linear_default({linear_layers.ENV_SWITCH: setting}, 'x', 'AVX512')


@pytest.mark.parametrize('setting, argument, expected', [
    ('1', None, ONEDNN), ('0', None, False), ('0', True, ONEDNN), ('1', False, False)])
def test_optimize_for_inference_reads_the_switch_once(setting, argument, expected,
                                                      monkeypatch):
    # The environment decides when the call does not; the decision is the call's, once.
    monkeypatch.setenv(linear_layers.ENV_SWITCH, setting)
    model = MODELS.build(dict(type='mmhybrid.UniFormer', arch=dict(
        embed_dims=[16, 32, 64, 64], depths=[1, 1, 1, 1], head_dim=16)))
    mmhybrid.optimize_for_inference(model, onednn_linear=argument)
    kinds = {type(m) for m in model.modules() if isinstance(m, nn.Linear)}
    assert kinds == ({OneDNNLinear} if expected else {nn.Linear})
    monkeypatch.setenv(linear_layers.ENV_SWITCH, '0' if setting == '1' else '1')
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))  # the environment is not read again
    assert {type(m) for m in model.modules() if isinstance(m, nn.Linear)} == kinds


def test_cpu_vendor_reads_cpuinfo(tmp_path):
    info = tmp_path / 'cpuinfo'
    info.write_text('processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n')
    assert linear_layers.cpu_vendor(str(info)) == 'AuthenticAMD'
    info.write_text('processor\t: 0\nCPU implementer\t: 0x41\n')  # an ARM cpuinfo
    assert linear_layers.cpu_vendor(str(info)) == ''
    assert linear_layers.cpu_vendor(str(tmp_path / 'missing')) == ''
