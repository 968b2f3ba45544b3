"""VAN: what only VAN has. Parity and checkpoint conversion are in test_parity.py and
test_converters.py; the backbone contract in test_contract.py."""
import copy

import pytest
import torch

from helpers import assert_conv_rewrite_exact
from mmhybrid.accel import layers as accel_layers
from mmhybrid.accel import optimize_for_training
from mmhybrid.accel.layers import PhaseDilatedConv2d
from mmhybrid.models import VAN


def dilated_depthwise_conv(conv, x):
    """``conv(x)`` as :class:`PhaseDilatedConv2d` computes it."""
    return PhaseDilatedConv2d.forward(conv, x)


def test_real_variant_param_counts():
    # Backbone parameters (no classifier) of the released variants: the paper's totals minus
    # the head (dims[-1] * 1000 + 1000).
    expected = {'b0': 4.1e6, 'b1': 13.9e6, 'b2': 26.6e6, 'b3': 44.8e6}
    for arch, total in expected.items():
        with torch.device('meta'):
            model = VAN(arch=arch)
        params = sum(p.numel() for p in model.parameters())
        head = model.stage_channels[-1] * 1000 + 1000
        assert params + head == pytest.approx(total, rel=0.02), arch


def test_layer_scale_off_is_none():
    arch = dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 1, 1], mlp_ratios=[2, 2, 2, 2])
    plain = VAN(arch=arch, layer_scale_init=None).eval()
    assert not any('layer_scale' in k for k in plain.state_dict())
    scaled = VAN(arch=arch, layer_scale_init=1.0).eval()
    assert sum('layer_scale' in k for k in scaled.state_dict()) == 2 * 4
    # With unit scales the two compute the same function.
    scaled.load_state_dict({**plain.state_dict(), **{
        k: torch.ones_like(v) for k, v in scaled.state_dict().items() if 'layer_scale' in k}})
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(plain(x), scaled(x)):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize('kernel,dilation,padding,size', [
    (7, 3, 9, (11, 13)), (7, 3, 9, (3, 5)), (7, 3, 9, (1, 2)), (3, 2, 2, (8, 9)),
    (5, 2, 3, (10, 7)), (7, 3, 0, (30, 25))])
@pytest.mark.parametrize('channels_last', [False, True])
def test_dilated_depthwise_conv_equals_the_conv(kernel, dilation, padding, size, channels_last):
    # LKA's dilated conv as a plain conv over the dilation's phase grids: every size class
    # (maps not a multiple of the dilation, maps smaller than the kernel's reach, which fall
    # back to the conv, other kernels and paddings); outputs and gradients, float64.
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 4, kernel, padding=padding, dilation=dilation, groups=4).double()
    x = torch.randn(2, 4, *size, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    got = assert_conv_rewrite_exact(dilated_depthwise_conv, conv, x.requires_grad_(True))
    if channels_last and min(got.shape[-2:]) > 1:
        assert got.is_contiguous(memory_format=torch.channels_last)


def phase_form_model():
    """A tiny VAN in float64 and a copy with the phase form swapped in."""
    torch.manual_seed(0)
    model = VAN(arch=dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 1, 1],
                          mlp_ratios=[2, 2, 2, 2])).double()
    fast = optimize_for_training(copy.deepcopy(model), onednn_linear=False)
    assert sum(type(m) is PhaseDilatedConv2d for m in fast.modules()) == 4
    return model, fast


def test_lka_runs_its_dilated_conv_on_phase_grids(monkeypatch):
    # The swapped-in conv runs the phase form (CPU) and computes what the plain conv computes.
    model, fast = phase_form_model()
    x = torch.randn(1, 3, 96, 80, dtype=torch.float64)
    calls = []
    monkeypatch.setattr(accel_layers.F, 'pixel_unshuffle',
                        lambda t, d, real=accel_layers.F.pixel_unshuffle:
                        calls.append(d) or real(t, d))
    got = fast(x)
    assert calls == [3] * 4
    want = model(x)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)
    # The conv is called as a module: its hooks run.
    seen = []
    fast.stages[0].blocks[0].attn.lka.conv_spatial.register_forward_hook(
        lambda *args: seen.append(1))
    for g, w in zip(fast(x), want):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)
    assert seen == [1]


class _GraphRecorder:
    """A ``torch.compile`` backend that keeps dynamo's graphs and runs them as traced."""

    def __init__(self):
        self.graphs = []

    def __call__(self, gm, example_inputs):
        self.graphs.append(gm)
        return gm.forward


def _calls(graph_module, name):
    return [n for n in graph_module.graph.nodes
            if n.op == 'call_function' and name in str(n.target)]


def test_compiled_lka_runs_its_dilated_conv_on_phase_grids():
    # Compiled graphs of the swapped-in conv use the phase form too. Eval and train: eager's
    # outputs and gradients.
    model = phase_form_model()[1]
    x = torch.randn(2, 3, 96, 80, dtype=torch.float64)
    for train in (False, True):
        torch.compiler.reset()
        model.train(train)
        recorder = _GraphRecorder()
        compiled = torch.compile(model, backend=recorder, fullgraph=True)
        with torch.set_grad_enabled(train):
            got = compiled(x)
            want = model(x)
        assert len(recorder.graphs) == 1
        assert len(_calls(recorder.graphs[0], 'pixel_unshuffle')) == 4  # one per block
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-10)
        if train:
            grads = torch.autograd.grad(sum(g.square().sum() for g in got), model.parameters())
            wants = torch.autograd.grad(sum(w.square().sum() for w in want), model.parameters())
            for g, w in zip(grads, wants):
                torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-9)
    torch.compiler.reset()


def test_exported_lka_keeps_the_dilated_conv():
    # Exported graphs (ONNX, torch.export) keep the plain conv: one op, as the model is written.
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 4, 7, padding=9, dilation=3, groups=4)
    conv.__class__ = PhaseDilatedConv2d

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = conv

        def forward(self, x):
            return self.conv(x)

    program = torch.export.export(Wrapped(), (torch.randn(1, 4, 30, 25),))
    assert not _calls(program.graph_module, 'pixel_unshuffle')
    assert len(_calls(program.graph_module, 'conv')) == 1
