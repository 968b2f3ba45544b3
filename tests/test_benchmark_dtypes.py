"""tools/benchmark.py's precisions: fp32, and autocast to bfloat16 (bf16) or float16 (fp16)."""
import importlib.util
from pathlib import Path

import pytest
import torch

from mmhybrid.utils import benchmark

REPO = Path(__file__).resolve().parents[1]


def _capture_conv_dtypes(monkeypatch):
    """Makes ``benchmark.measure`` record, per forward of its backbone, the dtypes its
    convolutions computed in (VAN's outputs leave a LayerNorm, which autocast runs in fp32)."""
    seen = []
    build = benchmark.build_backbone

    def recording_build(spec, kwargs):
        model = build(spec, kwargs)
        convs = set()
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.register_forward_hook(lambda m, args, out: convs.add(out.dtype))
        model.register_forward_pre_hook(lambda m, args: convs.clear())
        model.register_forward_hook(lambda m, args, out: seen.append(set(convs)))
        return model

    monkeypatch.setattr(benchmark, 'build_backbone', recording_build)
    return seen


@pytest.mark.parametrize('dtype,expected,mode', [
    ('fp32', torch.float32, 'fwdbwd'), ('bf16', torch.bfloat16, 'fwd'),
    ('fp16', torch.float16, 'fwd'), ('fp16', torch.float16, 'fwdbwd')])
def test_measure_runs_under_the_autocast_dtype(dtype, expected, mode, monkeypatch):
    seen = _capture_conv_dtypes(monkeypatch)
    result = benchmark.measure('van:b0', (64, 64), 'cpu', dtype, mode, reference=False,
                               warmup=1, repeat=1, batch=1, kwargs={})
    assert result['dtype'] == dtype and result['median_s'] > 0
    timed = seen[:2]  # the warm-up and the timed step (the FLOP count runs after, in fp32)
    assert timed == [{expected}, {expected}]
    assert not torch.is_autocast_enabled('cpu')


def test_unknown_dtype_is_refused():
    with pytest.raises(ValueError, match="dtype must be one of.*'fp8'"):
        benchmark.autocast_for('cpu', 'fp8')


def test_fp16_matmul_roof():
    roof = benchmark.matmul_roof('cpu', 'fp16', size=64, warmup=0, repeat=1)
    assert roof['dtype'] == 'fp16' and roof['gflops_per_s'] > 0


def test_cli_accepts_fp16_next_to_bf16():
    spec = importlib.util.spec_from_file_location('benchmark_tool',
                                                  REPO / 'tools' / 'benchmark.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    args = tool.parse_args(['van:b0', '--dtype', 'fp32', 'bf16', 'fp16'])
    assert args.dtype == ['fp32', 'bf16', 'fp16']
    with pytest.raises(SystemExit):
        tool.parse_args(['van:b0', '--dtype', 'fp8'])
