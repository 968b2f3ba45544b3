"""``torch.compile`` of every backbone: one graph, no recompile on new sizes, eager results.

Backends, to keep the suite short on a 2-core CPU:

- a counting backend (dynamo's trace, run as an FX graph) for the graph-break and recompile
  checks over a sequence of input sizes, on every tiny arch of ``archs.CONTRACT_MODELS`` and both
  CrossFormer LDA modes;
- ``aot_eager`` (dynamo + AOTAutograd's joint forward/backward graph, as inductor gets it) for
  outputs and gradients in train mode, per family, plain and with the training savers of
  ``mmhybrid.optimize_for_training``: this is where the custom autograd Functions
  (``RecomputedBiasAttention``, ``GeluBatchNorm``) are traced;
- ``inductor`` (generated C++ kernels) on the custom Functions alone, one whole tiny model
  (CMT) compiled for inference with freezing, as docs/usage.md recommends, and a stage
  boundary with ``LayerNorm2d`` lowered with dynamic sizes (a whole tiny model takes 30-90 s
  to compile on 2 CPU cores, so one family stands for the rest).
"""
import re

import pytest
import torch
import torch._dynamo as dynamo
from torch._dynamo.utils import counters

from archs import CONTRACT_MODELS, model_type
from mmhybrid.accel import optimize_for_training
from mmhybrid.accel.attention import RecomputedBiasAttention
from mmhybrid.accel.layers import GeluBatchNorm2d
from mmhybrid.registry import MODELS

# Multiples of 32 as mmdet's pad_size_divisor makes them; batch 2, as PyTorch's own choice of
# the CPU convolution kernel guards on the input size for batch 1 (oneDNN only above 20480
# input values for dense 3x3 and smaller kernels), which is not the backbones' doing.
SIZES = [(96, 128), (128, 96), (160, 192)]
BATCH = 2

# Every contract arch, and CrossFormer with both LDA groupings. CrossFormer's group size is 2 so
# that none of these sizes takes the small-map path (min(H, W) <= G switches the layout: one
# more graph per stage below that size, by design).
MODELS_TO_COMPILE = dict(CONTRACT_MODELS)
for _mode in ('iclr', 'regional'):
    MODELS_TO_COMPILE[f'CrossFormer/{_mode}'] = dict(
        arch=CONTRACT_MODELS['CrossFormer']['arch'], group_size=2, lda_mode=_mode)
del MODELS_TO_COMPILE['CrossFormer']


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return MODELS.build(dict(type=f'mmhybrid.{model_type(name)}', **MODELS_TO_COMPILE[name]))


@pytest.fixture(autouse=True)
def fresh_dynamo():
    dynamo.reset()
    counters.clear()
    yield
    dynamo.reset()


class CountingBackend:
    """Counts the graphs dynamo hands over and runs them as traced."""

    def __init__(self):
        self.graphs = 0

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        return gm.forward


@pytest.mark.parametrize('train', [False, True], ids=['eval', 'train'])
@pytest.mark.parametrize('name', sorted(MODELS_TO_COMPILE))
def test_whole_model_is_one_graph(name, train):
    """No graph break in eval (no grad) and train mode (grad, the custom Functions)."""
    model = build(name).train(train)
    backend = CountingBackend()
    x = torch.randn(BATCH, 3, *SIZES[0])
    with torch.set_grad_enabled(train):
        torch.compile(model, backend=backend, fullgraph=True)(x)
    assert backend.graphs == 1
    assert not counters['graph_break'], dict(counters['graph_break'])


@pytest.mark.parametrize('name', ['CMT', 'CrossFormer/regional'])
def test_train_mode_is_one_graph_at_batch_1(name):
    """Batch 1 in train mode: the heads of q are a strided view there, and the recomputing
    attention's backward (traced by dynamo with the forward) must not write its query gradient
    through a strided ``out=`` (a graph break that made the real CMT-S recompile per block and
    fail in inductor)."""
    model = build(name).train()
    backend = CountingBackend()
    torch.compile(model, backend=backend, fullgraph=True)(torch.randn(1, 3, *SIZES[0]))
    assert backend.graphs == 1
    assert not counters['graph_break'], dict(counters['graph_break'])


# The dynamic trace takes 5-70 s per arch on 2 CPU cores: a subset.
@pytest.mark.parametrize('name', ['VAN', 'UniFormer', 'UniFormerLight'])
def test_one_graph_serves_every_size(name):
    """Eval mode: one graph without breaks for all sizes (``dynamic=True``), eager's outputs."""
    model = build(name).eval()
    backend = CountingBackend()
    compiled = torch.compile(model, backend=backend, dynamic=True, fullgraph=True)
    with torch.no_grad():
        for size in SIZES:
            x = torch.randn(BATCH, 3, *size)
            for out, ref in zip(compiled(x), model(x)):
                torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    assert backend.graphs == 1, f'{backend.graphs} graphs for {len(SIZES)} sizes'
    assert not counters['graph_break'], dict(counters['graph_break'])


def test_layer_norm_2d_lowers_with_dynamic_sizes():
    """Inductor, eval mode, ``dynamic=True``: a strided conv, ``LayerNorm2d`` and a conv (a
    stage boundary of VAN and CMT; CrossFormer and UniFormer norm their embeddings with it too)
    lower as one graph for every size, with eager's outputs.

    torch 2.13's inductor failed to lower such graphs while ``LayerNorm2d`` was a permuted view
    (``ValueRangeError`` while ordering its symbolic strides, floor divisions of the strided
    conv's output size); it now reduces over the channels while compiling. The whole tiny archs
    take minutes each to lower on a small CPU, so a subset runs here. Training graphs with
    dynamic sizes are still specialised by inductor's conv-backward lowering (torch's, not
    ours)."""
    from torch._inductor.compile_fx import compile_fx

    from mmhybrid.models.layers import LayerNorm2d
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 7, 4, 3), LayerNorm2d(8),
                                torch.nn.Conv2d(8, 16, 3, 2, 1)).eval()
    graphs = []

    def count_then_inductor(gm, example_inputs):
        graphs.append(gm)
        return compile_fx(gm, example_inputs)

    compiled = torch.compile(model, backend=count_then_inductor, dynamic=True, fullgraph=True)
    with torch.no_grad():
        for size in SIZES:
            x = torch.randn(BATCH, 3, *size).contiguous(memory_format=torch.channels_last)
            torch.testing.assert_close(compiled(x), model(x), atol=1e-4, rtol=1e-4)
    assert len(graphs) == 1, f'{len(graphs)} graphs for {len(SIZES)} sizes'


def test_padded_groups_keep_one_dynamic_inference_graph():
    """AOTAutograd (as inductor gets it), eval mode, ``dynamic=True``: window groups of maps
    padded on both sides, on one side and on none run in one graph.

    Cropping the padding as a narrowed view made the tracer decide whether the view is
    contiguous (only when nothing was padded): a guard per side, so one graph per padding
    pattern (UniFormer's compiled inference recompiled on new sizes); ``crop_to`` gathers the
    rows and columns in traced inference instead."""
    from torch._dynamo.testing import CompileCounterWithBackend

    from mmhybrid.models.layers import apply_in_groups, window_layout
    torch.manual_seed(0)
    proj = torch.nn.Linear(24, 24)

    def windowed(x):
        return apply_in_groups(x, *window_layout(4), lambda groups, _: proj(groups),
                               mask_padding=False)

    counter = CompileCounterWithBackend('aot_eager')
    compiled = torch.compile(windowed, backend=counter, dynamic=True)
    graphs = []
    with torch.no_grad():
        for size in [(6, 10), (8, 6), (12, 8), (10, 12), (14, 14)]:
            x = torch.randn(BATCH, *size, 24)
            torch.testing.assert_close(compiled(x), windowed(x))
            graphs.append(counter.frame_count)
    assert graphs == graphs[:1] * len(graphs), f'graphs after each size: {graphs}'


def test_layer_norm_2d_compiled_form_equals_eager():
    """The traced form of ``LayerNorm2d`` (reductions over dim 1) equals the eager one."""
    from mmhybrid.models.layers import LayerNorm2d
    torch.manual_seed(0)
    norm = LayerNorm2d(16)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(2, 16, 7, 9).contiguous(memory_format=torch.channels_last) * 3 + 1
    torch.testing.assert_close(norm._normalize_channels(x), norm(x), atol=1e-5, rtol=1e-5)


def test_automatic_dynamic_compiles_twice():
    """``torch.compile``'s default (``dynamic=None``) compiles the first size static and the
    second one dynamic; later sizes reuse that graph."""
    model = build('VAN').eval()
    backend = CountingBackend()
    compiled = torch.compile(model, backend=backend)
    with torch.no_grad():
        for size in SIZES:
            compiled(torch.randn(BATCH, 3, *size))
    assert backend.graphs == 2


def _loss(outs):
    # Weights differ per stage so that each output's gradient is checked on its own.
    return sum((i + 1) * (o * o).mean() for i, o in enumerate(outs))


def _train_step(model, x, params):
    outs = model(x)
    _loss(outs).backward()
    grads = {n: p.grad.clone() for n, p in params if p.grad is not None}
    grads['input'] = x.grad.clone()
    model.zero_grad(set_to_none=True)
    x.grad = None
    return [o.detach() for o in outs], grads


def _assert_train_matches(model, backend, size=(96, 128), tol=1e-4):
    model.train()
    x = torch.randn(BATCH, 3, *size, requires_grad=True)
    params = list(model.named_parameters())
    ref_outs, ref_grads = _train_step(model, x, params)
    compiled = torch.compile(model, backend=backend, dynamic=False, fullgraph=True)
    outs, grads = _train_step(compiled, x, params)
    for out, ref in zip(outs, ref_outs):
        torch.testing.assert_close(out, ref, atol=tol, rtol=tol)
    assert grads.keys() == ref_grads.keys()
    for key, ref in ref_grads.items():
        torch.testing.assert_close(grads[key], ref, atol=tol, rtol=tol, msg=lambda m: f'{key}: {m}')


# Train mode with batch statistics and no dropout/drop path (all zero in the tiny archs).
@pytest.mark.parametrize('name', ['CMT', 'CrossFormer/regional', 'UniFormerLight'])
def test_train_step_matches_eager_aot(name):
    """Forward and backward through AOTAutograd's traced joint graph equal eager's."""
    _assert_train_matches(build(name), 'aot_eager')


@pytest.mark.parametrize('name', ['CMT', 'CrossFormer/regional', 'VAN'])
def test_train_step_with_training_savers_matches_eager_aot(name):
    """The training savers traced by AOTAutograd: eager's outputs and gradients."""
    _assert_train_matches(optimize_for_training(build(name), onednn_linear=True), 'aot_eager')


def test_custom_functions_under_inductor():
    """``RecomputedBiasAttention`` and ``GeluBatchNorm`` compiled by inductor: eager's outputs
    and gradients (dynamo traces their forward and backward into the graph)."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 40, 8, requires_grad=True) for _ in range(3))
    bias = torch.randn(1, 2, 40, 40, requires_grad=True)
    norm = torch.nn.BatchNorm2d(4).train()
    norm.__class__ = GeluBatchNorm2d  # GELU then the norm
    x = torch.randn(2, 4, 6, 6, requires_grad=True)

    def fn(q, k, v, bias, x):
        attn = RecomputedBiasAttention.apply(q, k, v, bias, 0.35)
        return (attn * attn).sum() + (norm(x)**2).sum()

    inputs = (q, k, v, bias, x)
    ref = fn(*inputs)
    ref_grads = torch.autograd.grad(ref, inputs + tuple(norm.parameters()))
    out = torch.compile(fn, backend='inductor', fullgraph=True)(*inputs)
    grads = torch.autograd.grad(out, inputs + tuple(norm.parameters()))
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, atol=1e-4, rtol=1e-4)


@pytest.mark.skipif(not hasattr(torch.library, 'custom_op'), reason='custom ops: torch >= 2.4')
@pytest.mark.parametrize('needs', [(True, True, True, True), (True, False, True, False)])
def test_recomputed_backward_is_one_opaque_call_in_compiled_graphs(needs):
    """In a compiled graph the recomputing backward is one call of the custom op (inductor runs
    it as it is, with its in-place band updates), gradients not needed are not computed, and
    the gradients equal eager's."""
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 40, 8, requires_grad=need) for need in needs[:3])
    bias = torch.randn(1, 2, 40, 40, requires_grad=needs[3])
    backward_graphs = []

    def keep_backward(gm, _):
        backward_graphs.append(gm)
        return make_boxed_func(gm)

    backend = aot_autograd(fw_compiler=lambda gm, _: make_boxed_func(gm),
                           bw_compiler=keep_backward)

    def fn(q, k, v, bias):
        attn = RecomputedBiasAttention.apply(q, k, v, bias, 0.35)
        return (attn * attn).sum() + q.sum()

    inputs = (q, k, v, bias)
    wanted = [t for t in inputs if t.requires_grad]
    ref_grads = torch.autograd.grad(fn(*inputs), wanted)
    grads = torch.autograd.grad(torch.compile(fn, backend=backend, fullgraph=True)(*inputs), wanted)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-5)
    op = torch.ops.mmhybrid.recomputed_bias_attention_backward.default
    calls = [n for gm in backward_graphs for n in gm.graph.nodes if n.target is op]
    assert len(calls) == 1
    assert list(calls[0].args[-1]) == list(needs)
    # Nothing else of the backward's products was traced into the graph.
    assert not [n for gm in backward_graphs for n in gm.graph.nodes
                if n.target in (torch.ops.aten.bmm.default, torch.ops.aten.baddbmm.default)]


def test_frozen_inference_matches_eager():
    """Inference compiled by inductor with ``freezing`` (weights as graph constants, the
    documented deployment setting, ``compile_frozen``): CMT's tiny arch (BatchNorms that
    inductor folds, the resized position bias) gives eager's outputs. Freezing is in effect
    (the convolutions run inductor's packed oneDNN op;
    ``torch.compile(options=dict(freezing=True))`` leaves the weights graph inputs with torch
    2.13), and the IRFFN's 1x1 convolutions stay convolutions (MKL's packed product runs only
    the model's linear layers). ~1 min of compile on 2 cores: one family stands for the rest
    (docs/benchmarks.md has every family's compiled rows)."""
    from torch._inductor.utils import run_and_get_code
    from mmhybrid.utils import compile_frozen
    model = build('CMT').eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # non-trivial statistics to fold
            m.running_mean.normal_(0, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(BATCH, 3, *SIZES[0])
    with torch.no_grad():
        expected = model(x)
    compiled = compile_frozen(model, fullgraph=True)
    outs, code = run_and_get_code(compiled, x)
    assert torch.is_grad_enabled()  # only inside the call
    assert len(outs) == len(expected)
    for out, ref in zip(outs, expected):
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    calls = re.findall(r'= (torch\.ops\.[\w.]+)\(', '\n'.join(code))
    assert 'torch.ops.mkldnn._convolution_pointwise.default' in calls
    linears = sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    assert calls.count('torch.ops.mkl._mkl_linear.default') == linears > 0
