"""What each fast path of ``mmhybrid.optimize_for_inference`` gains: the optimised backbone
against copies of it with one path put back to the plain module.

``time``: the optimised backbone and one copy per path that applies, in one process, forwards
alternating (``mmhybrid.utils.benchmark.alternating_medians``); prints each copy's median over
the optimised one's ("without / with": above 1 the path is faster). ``peak``: one variant per
process (``--path``), the growth of the process's peak RSS over two forwards; run it once per
path and repetition. Random weights and BatchNorm
statistics, fp32, batch 1, CPU. Results: docs/benchmarks.md ("What each CPU fast path gains").

    python benchmarks/fast_path_ablation.py time crossformer-s --size 800 1344 --rounds 5
    python benchmarks/fast_path_ablation.py peak van-b2 --size 800 1344 --path van_mlp
"""
import argparse
import contextlib
import copy
import json
import resource
from typing import Dict, List, Tuple

import torch
import torch.nn as nn

import mmhybrid
from mmhybrid.accel import cmt as accel_cmt
from mmhybrid.accel import crossformer as accel_crossformer
from mmhybrid.accel import layers as accel_layers
from mmhybrid.accel import van as accel_van
from mmhybrid.models.backbones import cmt, crossformer, van
from mmhybrid.models.layers import Mlp
from mmhybrid.registry import MODELS
from mmhybrid.utils.benchmark import alternating_medians

MODELS_TO_BUILD = {
    'crossformer-s': dict(type='mmhybrid.CrossFormer', arch='small'),
    'crossformer-s-regional': dict(type='mmhybrid.CrossFormer', arch='small',
                                   lda_mode='regional'),
    'uniformer-s': dict(type='mmhybrid.UniFormer', arch='small'),
    'cmt-s': dict(type='mmhybrid.CMT', arch='small'),
    'hatnet-s': dict(type='mmhybrid.HATNet', arch='small'),
    'transcnn-s': dict(type='mmhybrid.TransCNN', arch='small'),
    'van-b2': dict(type='mmhybrid.VAN', arch='b2'),
}
# Each path: the (fast class, plain class) pairs that put it back, or 'kernel' (the attention
# kernel attribute set back to None).
PATHS: Dict[str, object] = {
    'fused_mlp': [(accel_layers.FastMlp, Mlp)],
    'chunked_blocks': [(accel_crossformer.ChunkedCrossFormerBlock, crossformer.CrossFormerBlock)],
    'short_key': 'kernel',
    'cmt_bias_bands': [(accel_cmt.FastCMTStage, cmt.CMTStage),
                       (accel_cmt.FastLightweightMHSA, cmt.LightweightMHSA)],
    'cmt_irffn': [(accel_cmt.FastIRFFN, cmt.IRFFN)],
    'phase_form': [(accel_layers.PhaseDilatedConv2d, nn.Conv2d)],
    'van_attention': [(accel_van.FastVANAttention, van.VANAttention)],
    'van_mlp': [(accel_van.FastVANMlp, van.VANMlp)],
}


def build(name: str) -> nn.Module:
    torch.manual_seed(0)
    model = MODELS.build(MODELS_TO_BUILD[name]).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.3)
                module.running_var.uniform_(0.5, 2)
    return model


def without(model: nn.Module, path: str) -> Tuple[nn.Module, int]:
    """``model`` (in place) with ``path`` put back to the plain modules, and how many."""
    count = 0
    for module in model.modules():
        if PATHS[path] == 'kernel':
            if getattr(module, 'kernel', None) is not None:
                module.kernel = None
                count += 1
            continue
        for fast, plain in PATHS[path]:
            if type(module) is fast:
                module.__class__ = plain
                count += 1
    return model, count


def time_paths(name: str, size: List[int], rounds: int) -> None:
    plain = build(name)
    with_onednn = mmhybrid.optimize_for_inference(copy.deepcopy(plain), onednn_linear=True)
    optimised = mmhybrid.optimize_for_inference(plain)
    variants = {'all': optimised, 'plus_onednn': with_onednn}
    for path in PATHS:
        model, count = without(copy.deepcopy(optimised), path)
        if count:
            variants[path] = model
    x = torch.randn(1, 3, *size)
    medians = alternating_medians(variants, x, rounds, contextlib.nullcontext(), 'cpu')
    base = medians['all_median_s']
    for key in variants:
        median = medians[f'{key}_median_s']
        print(json.dumps(dict(model=name, size=size, without=key, median_s=median,
                              without_over_with=median / base)))


def peak(name: str, size: List[int], path: str) -> None:
    model = build(name)
    if path == 'plus_onednn':
        mmhybrid.optimize_for_inference(model, onednn_linear=True)
    else:
        mmhybrid.optimize_for_inference(model)
        if path != 'all':
            without(model, path)
    x = torch.randn(1, 3, *size)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with torch.no_grad():
        model(x)
        model(x)
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    print(json.dumps(dict(model=name, size=size, without=path, peak_mb=grown)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('what', choices=['time', 'peak'])
    parser.add_argument('model', choices=sorted(MODELS_TO_BUILD))
    parser.add_argument('--size', type=int, nargs=2, default=[224, 224], metavar=('H', 'W'))
    parser.add_argument('--rounds', type=int, default=5, help='time: alternating rounds')
    parser.add_argument('--path', default='all',
                        choices=['all', 'plus_onednn', *PATHS], help='peak: the variant')
    args = parser.parse_args()
    if args.what == 'time':
        time_paths(args.model, args.size, args.rounds)
    else:
        peak(args.model, args.size, args.path)


if __name__ == '__main__':
    main()
