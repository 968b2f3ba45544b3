#!/usr/bin/env python
"""Speed and memory of mmhybrid backbones.

    python tools/benchmark.py all --sizes 224 512 800x1344
    python tools/benchmark.py crossformer:small --sizes 800x1344 --compare-reference
    python tools/benchmark.py all --compare-reference --markdown docs/benchmarks.md

For every backbone (``family:arch``, e.g. ``van:b2``, or ``all``) and input size it measures the
median forward latency (eval, no grad) and forward+backward latency (train mode) after warm-up,
images/s, and peak memory: on CUDA ``torch.cuda.max_memory_allocated``; on the CPU the increase of
the process's peak resident memory over its state after building the model. Each measurement runs in
a fresh subprocess so that peaks do not leak from one to the next.

``--compare-reference`` measures each model twice in one run: as implemented (PyTorch's
``scaled_dot_product_attention``) and with an explicit ``softmax(q k^T * scale + bias) v``
reference attention patched in by this script (the library has no such mode), and reports the
ratios.
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The backbones `all` stands for: the variant of each family the papers compare at ~25M params.
DEFAULT_SPECS = ['crossformer:small', 'uniformer:small', 'cmt:small', 'hatnet:small',
                 'transcnn:small', 'van:b2']


def parse_size(text: str) -> Tuple[int, int]:
    if 'x' in text:
        h, w = text.lower().split('x')
        return int(h), int(w)
    return int(text), int(text)


def resolve_specs(specs: List[str]) -> List[str]:
    import mmhybrid  # noqa: F401
    from mmhybrid.registry import MODELS
    names = {name.lower(): name for name in MODELS.module_dict}
    result = []
    for spec in (DEFAULT_SPECS if specs == ['all'] else specs):
        family = spec.split(':')[0].lower()
        if family in names:
            result.append(spec)
        elif specs != ['all']:
            raise SystemExit(f'unknown backbone {spec!r}; registered: {sorted(names)}')
    return result


def build(spec: str, kwargs: Dict[str, Any]):
    import mmhybrid  # noqa: F401
    from mmhybrid.registry import MODELS
    family, _, arch = spec.partition(':')
    names = {name.lower(): name for name in MODELS.module_dict}
    cfg = dict(type=f'mmhybrid.{names[family.lower()]}', **kwargs)
    if arch:
        cfg['arch'] = arch
    return MODELS.build(cfg)


def explicit_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                       scale=None, enable_gqa=False):
    """The textbook attention: materialises the full logits, then softmax, then @ v."""
    import torch
    scale = query.shape[-1]**-0.5 if scale is None else scale
    logits = (query * scale) @ key.transpose(-2, -1)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            logits = logits.masked_fill(~attn_mask, float('-inf'))
        else:
            logits = logits + attn_mask
    return logits.softmax(dim=-1) @ value


def patch_reference_attention() -> int:
    """Replaces SDPA everywhere mmhybrid can reach it; returns how many bindings were patched."""
    import torch.nn.functional as F
    original = F.scaled_dot_product_attention
    F.scaled_dot_product_attention = explicit_attention
    patched = 1
    for name, module in list(sys.modules.items()):
        if name.startswith('mmhybrid') and getattr(module, 'scaled_dot_product_attention',
                                                   None) is original:
            module.scaled_dot_product_attention = explicit_attention
            patched += 1
    return patched


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(spec: str, size: Tuple[int, int], device: str, dtype: str, mode: str,
            reference: bool, warmup: int, repeat: int, batch: int,
            kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """One measurement, run inside the worker subprocess."""
    import torch
    torch.manual_seed(0)
    model = build(spec, kwargs).to(device)
    if reference:
        patch_reference_attention()
    x = torch.randn(batch, 3, *size, device=device)
    autocast = torch.autocast(device_type=device, dtype=torch.bfloat16,
                              enabled=dtype == 'bf16')
    if mode == 'fwd':
        model.eval()
    else:
        model.train()

    def step():
        if mode == 'fwd':
            with torch.no_grad(), autocast:
                model(x)
        else:
            with autocast:
                outs = model(x)
            sum(o.float().mean() for o in outs).backward()
            model.zero_grad(set_to_none=True)

    def sync():
        if device == 'cuda':
            torch.cuda.synchronize()

    base_rss = peak_rss_bytes()
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
        base_cuda = torch.cuda.memory_allocated()
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    result = dict(spec=spec, size=list(size), device=device, dtype=dtype, mode=mode,
                  attention='explicit' if reference else 'sdpa', batch=batch,
                  median_s=median, images_per_s=batch / median, repeat=repeat)
    if device == 'cuda':
        result['peak_mem_mb'] = (torch.cuda.max_memory_allocated() - base_cuda) / 2**20
        result['sdpa_backends'] = _cuda_sdpa_backends()
    else:
        result['peak_mem_mb'] = (peak_rss_bytes() - base_rss) / 2**20
    return result


def _cuda_sdpa_backends() -> Dict[str, bool]:
    import torch
    b = torch.backends.cuda
    return dict(flash=b.flash_sdp_enabled(), mem_efficient=b.mem_efficient_sdp_enabled(),
                math=b.math_sdp_enabled())


def run_worker(job: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    cmd = [sys.executable, os.path.abspath(__file__), '--worker', json.dumps(job)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(f'failed: {job}\n{proc.stderr[-2000:]}\n')
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine() -> str:
    import torch
    info = f'{platform.processor() or platform.machine()}, {os.cpu_count()} cores, ' \
           f'torch {torch.__version__}, {torch.get_num_threads()} threads'
    if torch.cuda.is_available():
        info += f', {torch.cuda.get_device_name()}'
    return info


def to_markdown(results: List[Dict[str, Any]], command: str) -> str:
    lines = ['| backbone | size | device | dtype | mode | attention | median ms | img/s | '
             'peak MB |', '|---|---|---|---|---|---|---|---|---|']
    for r in results:
        lines.append(f"| {r['spec']} | {r['size'][0]}x{r['size'][1]} | {r['device']} | "
                     f"{r['dtype']} | {r['mode']} | {r['attention']} | "
                     f"{r['median_s'] * 1e3:.1f} | {r['images_per_s']:.2f} | "
                     f"{r['peak_mem_mb']:.0f} |")
    ratios = []
    for r in results:
        if r['attention'] != 'sdpa':
            continue
        ref = next((q for q in results if q['attention'] == 'explicit' and all(
            q[k] == r[k] for k in ('spec', 'size', 'device', 'dtype', 'mode'))), None)
        if ref:
            ratios.append(f"| {r['spec']} | {r['size'][0]}x{r['size'][1]} | {r['mode']} | "
                          f"{ref['median_s'] / r['median_s']:.2f}x | "
                          f"{r['peak_mem_mb']:.0f} / {ref['peak_mem_mb']:.0f} |")
    text = '\n'.join(lines)
    if ratios:
        text += ('\n\nSDPA against explicit softmax attention, same run (speed-up = explicit time '
                 '/ SDPA time; peak memory SDPA / explicit, MB):\n\n| backbone | size | mode | '
                 'speed-up | peak MB |\n|---|---|---|---|---|\n' + '\n'.join(ratios))
    return f'Command: `{command}`\n\nMachine: {machine()}\n\n{text}\n'


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('specs', nargs='*', default=['all'],
                        help='family:arch (e.g. van:b2, crossformer:small) or all')
    parser.add_argument('--sizes', nargs='+', default=['224', '512', '800x1344'])
    parser.add_argument('--device', default=None, help='cpu or cuda (default: cuda if present)')
    parser.add_argument('--dtype', nargs='+', default=['fp32'], choices=['fp32', 'bf16'])
    parser.add_argument('--modes', nargs='+', default=['fwd', 'fwdbwd'],
                        choices=['fwd', 'fwdbwd'])
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--kwargs', default='{}', help='JSON of extra backbone arguments')
    parser.add_argument('--compare-reference', action='store_true',
                        help='also measure with explicit softmax attention')
    parser.add_argument('--json', default=None, help='write the results here')
    parser.add_argument('--markdown', default=None, help='write a markdown report here')
    parser.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(**json.loads(args.worker))))
        return 0
    import torch
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    specs = resolve_specs(args.specs)
    results = []
    for spec in specs:
        for size in map(parse_size, args.sizes):
            for dtype in args.dtype:
                for mode in args.modes:
                    for reference in ([False, True] if args.compare_reference else [False]):
                        job = dict(spec=spec, size=size, device=device, dtype=dtype, mode=mode,
                                   reference=reference, warmup=args.warmup,
                                   repeat=args.repeat, batch=args.batch,
                                   kwargs=json.loads(args.kwargs))
                        result = run_worker(job)
                        if result:
                            results.append(result)
                            print(f"{spec:20s} {size[0]}x{size[1]:<5d} {dtype} {mode:7s} "
                                  f"{result['attention']:8s} {result['median_s'] * 1e3:9.1f} ms"
                                  f"  {result['peak_mem_mb']:8.0f} MB", flush=True)
    command = 'python tools/benchmark.py ' + ' '.join(argv if argv is not None else sys.argv[1:])
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(machine=machine(), command=command, results=results), f, indent=1)
    report = to_markdown(results, command)
    if args.markdown:
        write_report(args.markdown, report, key=device)
    print(report)
    return 0


def markers(key: str) -> Tuple[str, str]:
    return f'<!-- benchmark:begin {key} -->', f'<!-- benchmark:end {key} -->'


def write_report(path: str, report: str, key: str = 'cpu') -> None:
    """Writes ``report`` into ``path`` between the markers of ``key`` (the device), keeping the
    rest of the page: the notes written by hand and the other devices' tables. A missing block is
    appended; a new file gets a fresh page."""
    begin, end = markers(key)
    block = f'{begin}\n{report}{end}\n'
    text = ''
    if os.path.isfile(path):
        with open(path) as f:
            text = f.read()
    if begin in text and end in text.split(begin, 1)[1]:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1].lstrip('\n')
    elif text:
        text = text.rstrip('\n') + '\n\n' + block
    else:
        text = ('# Benchmarks\n\nGenerated by `tools/benchmark.py`; regenerate with the command '
                'below.\n\n' + block)
    from mmhybrid.engine import atomic_write_bytes
    atomic_write_bytes(text.encode(), path)


if __name__ == '__main__':
    sys.exit(main())
