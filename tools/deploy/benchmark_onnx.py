#!/usr/bin/env python
"""PyTorch eager vs onnxruntime on this machine, one real-size model per family.

    python tools/deploy/benchmark_onnx.py [CONFIG ...] [--shape H W] [--repeat N] [--threads T]

For each config (default: one Semantic FPN segmenter per family) the model is built with random
weights (the timing does not depend on them), exported with a dynamic size, checked against
PyTorch at the benchmark size (max relative error), and timed: batch 1, fp32, median of
``--repeat`` runs after one warm-up, both runtimes with the same thread count; the same file is
also compared with PyTorch at ``--check-sizes`` (one real-size check per family). Prints a
markdown table (docs/deploy.md).
"""
import argparse
import os.path as osp
import statistics
import sys
import tempfile
import time

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

DEFAULT_CONFIGS = [
    'configs/seg/fpn_crossformer_s_80k.py', 'configs/seg/fpn_uniformer_s_80k.py',
    'configs/seg/fpn_cmt_s_80k.py', 'configs/seg/fpn_hatnet_s_80k.py',
    'configs/seg/fpn_transcnn_s_80k.py', 'configs/seg/fpn_van_b2_40k.py',
]


def _median_time(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('configs', nargs='*', default=DEFAULT_CONFIGS)
    parser.add_argument('--shape', type=int, nargs=2, default=[512, 512])
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--check-sizes', nargs='*', default=['800x1333', '600x917'],
                        help='further sizes at which the one dynamic file is compared with '
                        'PyTorch (HxW)')
    args = parser.parse_args(argv)

    import numpy as np
    import onnxruntime as ort
    import torch

    from mmhybrid.deploy.export import build_model, export_onnx
    from mmhybrid.deploy.graphs import SegmenterGraph
    torch.set_num_threads(args.threads)
    rows = ['| config | input | PyTorch eager (s) | onnxruntime (s) | speed-up | export (s) | '
            f'max rel. error ({args.shape[0]}x{args.shape[1]}, {", ".join(args.check_sizes)}) |',
            '|---|---|---|---|---|---|---|']
    for config in args.configs:
        if not osp.isfile(config):  # renamed configs (e.g. 80k -> 40k) are reported, not fatal
            print(f'skipping {config}: not found', file=sys.stderr)
            continue
        torch.manual_seed(0)
        model, _ = build_model(config)
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = osp.join(tmp, 'model.pth')
            torch.save({'state_dict': model.state_dict()}, checkpoint)
            out = osp.join(tmp, 'model.onnx')
            start = time.perf_counter()
            export_onnx(config, checkpoint, out, shape=args.shape, dynamic=True, check=False)
            export_s = time.perf_counter() - start
            options = ort.SessionOptions()
            options.intra_op_num_threads = args.threads
            session = ort.InferenceSession(out, options, providers=['CPUExecutionProvider'])
            image = torch.rand(1, 3, *args.shape) * 255
            graph = SegmenterGraph(model).eval()
            with torch.no_grad():
                ref = graph(image).numpy()
            got = session.run(None, {'image': image.numpy()})[0]
            err = float(np.abs(got - ref).max() / np.abs(ref).max())
            for text in args.check_sizes:
                other = torch.rand(1, 3, *map(int, text.split('x'))) * 255
                with torch.no_grad():
                    ref_other = graph(other).numpy()
                got_other = session.run(None, {'image': other.numpy()})[0]
                err = max(err, float(np.abs(got_other - ref_other).max()
                                     / np.abs(ref_other).max()))

            def eager():
                with torch.no_grad():
                    graph(image)

            eager_s = _median_time(eager, args.repeat)
            onnx_s = _median_time(lambda: session.run(None, {'image': image.numpy()}),
                                  args.repeat)
        rows.append(f'| {osp.basename(config)} | {args.shape[0]}x{args.shape[1]} | '
                    f'{eager_s:.3f} | {onnx_s:.3f} | {eager_s / onnx_s:.2f}x | {export_s:.0f} | '
                    f'{err:.1e} |')
        print(rows[-1], flush=True)
    print('\n'.join(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
