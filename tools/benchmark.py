#!/usr/bin/env python
"""Speed and memory of mmhybrid backbones.

    python tools/benchmark.py all --sizes 224 512 800x1344
    python tools/benchmark.py crossformer:small --sizes 800x1344 --compare-reference
    python tools/benchmark.py all --compare-reference --markdown docs/benchmarks.md
    python tools/benchmark.py all --sizes 800x1344 --batch 2 --dtype fp32 bf16 fp16 --device cuda

For every backbone (``family:arch``, e.g. ``van:b2``, or ``all``) and input size it measures the
median forward latency (eval, no grad) and forward+backward latency (train mode) after warm-up,
images/s, and peak memory: on CUDA ``torch.cuda.max_memory_allocated``; on the CPU the increase of
the process's peak resident memory over its state after building the model. Each measurement runs in
a fresh subprocess so that peaks do not leak from one to the next. ``--dtype`` runs them in fp32
and/or under autocast to bfloat16 (``bf16``) or float16 (``fp16``; training steps without a loss
scaler).

``--compare-reference`` measures each model twice in one run: as implemented (PyTorch's
``scaled_dot_product_attention``) and with an explicit ``softmax(q k^T * scale + bias) v``
reference attention patched in (the library has no such mode), and reports the ratios.
``--compile`` measures each row a second time under ``torch.compile`` (inductor, in its own
process; inference rows with inductor's freezing, as deployed) and reports eager against
compiled, with the compile time (the first call's extra time). On the CPU each inference row is
measured a second time after ``mmhybrid.optimize_for_inference`` (folded, CPU fast paths swapped
in), plain and optimised forwards alternating in one process (``--plain-only`` skips it;
forward+backward rows always train the plain model). The work is done by ``mmhybrid.utils.benchmark.run_benchmark``.
"""
import argparse
import json
import os.path as osp
import sys
import warnings
from typing import List, Optional

_REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO not in sys.path:  # a checkout's tools run its own package, pip-installed or not
    sys.path.insert(0, _REPO)
if not sys.warnoptions:  # -W and PYTHONWARNINGS keep the last word
    # setuptools' notice about third-party uses of pkg_resources: nothing a user can act on
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated as an API',
                            category=UserWarning)

import torch  # noqa: E402

from mmhybrid.engine import BadInputError, bad_input_exits  # noqa: E402
from mmhybrid.utils.benchmark import run_benchmark  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('specs', nargs='*', default=['all'],
                        help='family:arch (e.g. van:b2, crossformer:small) or all')
    parser.add_argument('--sizes', nargs='+', default=['224', '512', '800x1344'])
    parser.add_argument('--device', default=None, help='cpu or cuda (default: cuda if present)')
    parser.add_argument('--dtype', nargs='+', default=['fp32'], choices=['fp32', 'bf16', 'fp16'],
                        help='fp32, or autocast to bfloat16 (bf16) / float16 (fp16)')
    parser.add_argument('--modes', nargs='+', default=['fwd', 'fwdbwd'],
                        choices=['fwd', 'fwdbwd'])
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--kwargs', default='{}', help='JSON of extra backbone arguments')
    parser.add_argument('--compare-reference', action='store_true',
                        help='also measure with explicit softmax attention')
    parser.add_argument('--compile', action='store_true',
                        help='also measure every row under torch.compile (inductor; fwd rows frozen)')
    parser.add_argument('--plain-only', action='store_true',
                        help='do not also measure fwd rows after optimize_for_inference (CPU)')
    parser.add_argument('--roof-size', type=int, default=4096,
                        help='side of the square matmul (in each --dtype) measured as the roof')
    parser.add_argument('--json', default=None, help='write the results here')
    parser.add_argument('--markdown', default=None, help='write a markdown report here')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    command = 'python tools/benchmark.py ' + ' '.join(argv if argv is not None else sys.argv[1:])
    with bad_input_exits():  # one message and exit status 2, no traceback
        try:
            kwargs = json.loads(args.kwargs)
        except json.JSONDecodeError as error:
            raise BadInputError(f'--kwargs is not JSON ({error}): {args.kwargs!r}') from error
        try:
            run_benchmark(args.specs, args.sizes, device=device, dtypes=args.dtype,
                          modes=args.modes, batch=args.batch, warmup=args.warmup,
                          repeat=args.repeat, kwargs=kwargs,
                          compare_reference=args.compare_reference, json_path=args.json,
                          markdown_path=args.markdown, command=command,
                          roof_size=args.roof_size, compile=args.compile,
                          optimize=not args.plain_only and device == 'cpu')
        except ValueError as error:  # an unknown backbone or dtype
            raise BadInputError(str(error)) from error
    return 0


if __name__ == '__main__':
    sys.exit(main())
