#!/usr/bin/env python
"""PyTorch eager vs onnxruntime on this machine, one real-size model per family.

    python tools/deploy/benchmark_onnx.py [CONFIG ...] [--shape H W] [--repeat N] [--threads T]
        [--switch-to-deploy]

For each config (default: one Semantic FPN segmenter per family) the model is built with random
weights (the timing does not depend on them), exported with a dynamic size, checked against
PyTorch at the benchmark size (max relative error), and timed: batch 1, fp32, median of
``--repeat`` runs after one warm-up, both runtimes with the same thread count, their runs
alternating (so that a machine whose speed drifts slows both alike); the same file is also
compared with PyTorch at ``--check-sizes`` (one real-size check per family). With
``--switch-to-deploy`` a second file is exported from the folded backbone
(``HybridBackbone.switch_to_deploy``) and timed in the same alternation, with the folded model
in PyTorch eager beside it; the error column then covers both files (each against the unfolded
model). BatchNorm statistics are drawn at random (as trained ones would be), so that folding them
is not a no-op. Prints a markdown table (docs/deploy.md).
"""
import argparse
import os.path as osp
import statistics
import sys
import warnings
import tempfile
import time

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)
if not sys.warnoptions:  # -W and PYTHONWARNINGS keep the last word
    # setuptools' notice about third-party uses of pkg_resources: nothing a user can act on
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated as an API',
                            category=UserWarning)

DEFAULT_CONFIGS = [
    'configs/seg/fpn_crossformer_s_80k.py', 'configs/seg/fpn_uniformer_s_80k.py',
    'configs/seg/fpn_cmt_s_80k.py', 'configs/seg/fpn_hatnet_s_80k.py',
    'configs/seg/fpn_transcnn_s_80k.py', 'configs/seg/fpn_van_b2_40k.py',
]


def alternating_medians(fns, repeat):
    """Median seconds of each callable over ``repeat`` rounds, one warm-up call each first; every
    round calls them one after the other."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(repeat):
        for fn, spent in zip(fns, times):
            start = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - start)
    return [statistics.median(spent) for spent in times]


def randomize_norm_statistics_(model) -> None:
    """Random running statistics in every BatchNorm (a freshly built one holds 0 and 1, so
    that folding it would change nothing worth timing)."""
    import torch
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) \
                and module.running_mean is not None:
            module.running_mean.copy_(torch.randn(module.running_mean.shape,
                                                  generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.running_var.shape,
                                                generator=generator) + 0.5)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('configs', nargs='*', default=DEFAULT_CONFIGS)
    parser.add_argument('--shape', type=int, nargs=2, default=[512, 512])
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--check-sizes', nargs='*', default=['800x1333', '600x917'],
                        help='further sizes at which the one dynamic file is compared with '
                        'PyTorch (HxW)')
    parser.add_argument('--switch-to-deploy', action='store_true',
                        help='also export and time the model with its backbone folded '
                        '(HybridBackbone.switch_to_deploy)')
    args = parser.parse_args(argv)

    import copy

    import numpy as np
    import onnxruntime as ort
    import torch

    from mmhybrid.deploy.export import build_model, export_onnx
    from mmhybrid.deploy.graphs import SegmenterGraph
    torch.set_num_threads(args.threads)
    size = f'{args.shape[0]}x{args.shape[1]}'
    errors = f'max rel. error ({size}, {", ".join(args.check_sizes)}) |'
    if args.switch_to_deploy:
        rows = ['| config | input | PyTorch eager (s) | eager, deployed (s) | onnxruntime (s) | '
                'onnxruntime, deployed file (s) | onnxruntime speed-up, deployed / as built | '
                'export (s) | ' + errors,
                '|---|---|---|---|---|---|---|---|---|']
    else:
        rows = ['| config | input | PyTorch eager (s) | onnxruntime (s) | speed-up | export (s) | '
                + errors, '|---|---|---|---|---|---|---|']
    for config in args.configs:
        if not osp.isfile(config):  # renamed configs (e.g. 80k -> 40k) are reported, not fatal
            print(f'skipping {config}: not found', file=sys.stderr)
            continue
        torch.manual_seed(0)
        model, _ = build_model(config)
        randomize_norm_statistics_(model)
        graphs = [SegmenterGraph(model).eval()]
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = osp.join(tmp, 'model.pth')
            torch.save({'state_dict': model.state_dict()}, checkpoint)
            files, export_s = [osp.join(tmp, 'model.onnx')], []
            if args.switch_to_deploy:
                files.append(osp.join(tmp, 'model.deployed.onnx'))
                deployed = copy.deepcopy(model)
                deployed.backbone.switch_to_deploy()
                graphs.append(SegmenterGraph(deployed).eval())
            for i, out in enumerate(files):
                start = time.perf_counter()
                export_onnx(config, checkpoint, out, shape=args.shape, dynamic=True,
                            check=False, switch_to_deploy=i == 1)
                export_s.append(time.perf_counter() - start)
            options = ort.SessionOptions()
            options.intra_op_num_threads = args.threads
            sessions = [ort.InferenceSession(out, options, providers=['CPUExecutionProvider'])
                        for out in files]
            err = 0.
            for text in [size] + list(args.check_sizes):
                image = torch.rand(1, 3, *map(int, text.split('x'))) * 255
                with torch.no_grad():
                    ref = graphs[0](image).numpy()
                for session in sessions:
                    got = session.run(None, {'image': image.numpy()})[0]
                    err = max(err, float(np.abs(got - ref).max() / np.abs(ref).max()))

            image = torch.rand(1, 3, *args.shape) * 255

            def eager(graph):
                def run():
                    with torch.no_grad():
                        graph(image)
                return run

            def onnx(session):
                return lambda: session.run(None, {'image': image.numpy()})

            # Alternating: eager, onnx[, eager deployed, onnx deployed].
            fns = [f for pair in zip(map(eager, graphs), map(onnx, sessions)) for f in pair]
            times = alternating_medians(fns, args.repeat)
        name = osp.basename(config)
        exports = ' / '.join(f'{s:.0f}' for s in export_s)
        if args.switch_to_deploy:
            eager_s, onnx_s, eager_dep_s, onnx_dep_s = times
            rows.append(f'| {name} | {size} | {eager_s:.3f} | {eager_dep_s:.3f} | {onnx_s:.3f} | '
                        f'{onnx_dep_s:.3f} | {onnx_s / onnx_dep_s:.2f}x | {exports} | '
                        f'{err:.1e} |')
        else:
            eager_s, onnx_s = times
            rows.append(f'| {name} | {size} | {eager_s:.3f} | {onnx_s:.3f} | '
                        f'{eager_s / onnx_s:.2f}x | {exports} | {err:.1e} |')
        print(rows[-1], flush=True)
    print('\n'.join(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
