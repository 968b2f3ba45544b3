"""Speed and memory of mmhybrid backbones (``tools/benchmark.py``).

For every backbone (``family:arch``) and input size, :func:`run_benchmark` measures the median
forward latency (eval, no grad) and forward+backward latency (train mode) after warm-up,
images/s, and peak memory: on CUDA ``torch.cuda.max_memory_allocated``; on the CPU the increase of
the process's peak resident memory over its state after building the model. Each measurement runs
in a fresh subprocess (:func:`run_worker`) so that peaks do not leak from one to the next.

Each row also gives the achieved GFLOP/s: the step's FLOPs (2 per multiply-accumulate of the
convolutions, linear layers, matrix products and attention, counted by
:func:`~.complexity.count_macs`; a forward+backward step counts three forwards, the usual
convention) over its median time. A large matrix product in each measured dtype (fp32, bf16,
fp16), timed in the same run (:func:`matmul_roof`, at the start and the end), gives the machine's
practical limit, so that the report can show each model's distance to it.

With ``compare_reference`` each model is measured twice: as implemented (PyTorch's
``scaled_dot_product_attention``) and with the explicit ``softmax(q k^T * scale + bias) v`` of
:func:`explicit_attention` patched in (:func:`patch_reference_attention`; the library has no such
mode), and the report gives the ratios.
"""
import copy
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, TextIO, Tuple, Union

import torch
import torch.nn.functional as F

from ..engine import atomic_write_bytes
from ..accel import internals as accel_internals
from ..accel import linear as linear_layers
from ..accel import optimize_for_inference
from .build import build_backbone, resolve_specs
from .compile import compile_frozen
from .complexity import count_macs

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# ``dtype`` of a measurement -> the autocast dtype it runs under (fp32: no autocast).
AUTOCAST_DTYPES = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def autocast_for(device: str, dtype: str) -> torch.autocast:
    """The autocast context of a measurement in ``dtype`` (``'fp32'``: disabled).

    Raises:
        ValueError: ``dtype`` is not one of :data:`AUTOCAST_DTYPES`.
    """
    if dtype not in AUTOCAST_DTYPES:
        raise ValueError(f'dtype must be one of {sorted(AUTOCAST_DTYPES)}, got {dtype!r}')
    autocast_dtype = AUTOCAST_DTYPES[dtype]
    return torch.autocast(device_type=device, dtype=autocast_dtype or torch.bfloat16,
                          enabled=autocast_dtype is not None)


def parse_size(text: Union[str, Sequence[int]]) -> Tuple[int, int]:
    """``'224'`` -> (224, 224); ``'800x1344'`` -> (800, 1344); a pair stays a pair."""
    if not isinstance(text, str):
        h, w = text
        return int(h), int(w)
    if 'x' in text.lower():
        h, w = text.lower().split('x')
        return int(h), int(w)
    return int(text), int(text)


def explicit_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                       scale=None, enable_gqa=False):
    """The textbook attention: materialises the full logits, then softmax, then @ v."""
    scale = query.shape[-1]**-0.5 if scale is None else scale
    logits = (query * scale) @ key.transpose(-2, -1)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            logits = logits.masked_fill(~attn_mask, float('-inf'))
        else:
            logits = logits + attn_mask
    return logits.softmax(dim=-1) @ value


def patch_reference_attention() -> int:
    """Replaces SDPA everywhere mmhybrid can reach it by :func:`explicit_attention`, for the rest
    of the process; returns how many bindings were patched."""
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


def sync(device: str) -> None:
    """Waits for the device's queued work (a timed region ends only when its kernels have)."""
    if device == 'cuda':
        torch.cuda.synchronize()


def measure(spec: str,
            size: Sequence[int],
            device: str,
            dtype: str,
            mode: str,
            reference: bool,
            warmup: int,
            repeat: int,
            batch: int,
            kwargs: Dict[str, Any],
            compile: bool = False,
            optimize: bool = False) -> Dict[str, Any]:
    """One measurement in this process (run it in a fresh one: :func:`run_worker`); with
    ``compile``, of ``torch.compile(model)`` (inductor; the first call's extra time is
    ``compile_s``). Compiled forward rows use inductor's freezing (the weights become constants
    of the inference graph, so that BatchNorms fold and weights are pre-packed), as for
    deployment; compiled training rows cannot freeze. With ``optimize`` (forward rows only), of
    the backbone after ``mmhybrid.optimize_for_inference`` (folded, CPU fast paths swapped in);
    the process then also times the plain backbone against the optimised one, their forwards
    alternating (``ab_plain_median_s``, ``ab_optimized_median_s``: a same-process A/B, which a
    machine whose speed drifts between processes leaves fair)."""
    size = tuple(size)
    torch.manual_seed(0)
    model = build_backbone(spec, kwargs).to(device)
    if reference:
        patch_reference_attention()
    x = torch.randn(batch, 3, *size, device=device)
    autocast = autocast_for(device, dtype)
    plain = None
    if mode == 'fwd':
        model.eval()
        if optimize:
            plain = copy.deepcopy(model)
            optimize_for_inference(model)
    elif optimize:
        raise ValueError('optimize measures inference only (mode fwd)')
    else:
        model.train()
    freezing = compile and mode == 'fwd'
    run = (compile_frozen(model) if freezing else torch.compile(model) if compile else model)

    def step():
        if mode == 'fwd':
            with torch.no_grad(), autocast:
                run(x)
        else:
            with autocast:
                outs = run(x)
            sum(o.float().mean() for o in outs).backward()
            model.zero_grad(set_to_none=True)

    base_rss = peak_rss_bytes()
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
        base_cuda = torch.cuda.memory_allocated()
    start = time.perf_counter()
    for i in range(warmup):
        step()
        if i == 0:
            sync(device)
            first_s = time.perf_counter() - start
    sync(device)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    result = dict(spec=spec, size=list(size), device=device, dtype=dtype, mode=mode,
                  attention='explicit' if reference else 'sdpa', batch=batch,
                  median_s=median, images_per_s=batch / median, repeat=repeat, compile=compile,
                  freezing=freezing, optimize=optimize)
    if compile and warmup:
        result['compile_s'] = first_s - median
    if device == 'cuda':
        result['peak_mem_mb'] = (torch.cuda.max_memory_allocated() - base_cuda) / 2**20
        result['sdpa_backends'] = _cuda_sdpa_backends()
    else:
        result['peak_mem_mb'] = (peak_rss_bytes() - base_rss) / 2**20
    if plain is not None:
        result.update(alternating_medians(dict(ab_plain=plain, ab_optimized=model), x, repeat,
                                          autocast, device))
    # Counted after the peak was read: the counting forward must not add to it.
    # The plain model's count: the same work, whatever the optimised modules' ops are.
    result['flops'] = step_flops(model if plain is None else plain, x, mode)
    result['gflops_per_s'] = result['flops'] / median / 1e9
    return result


def alternating_medians(models: Dict[str, torch.nn.Module], x: torch.Tensor, repeat: int,
                        autocast: Any, device: str) -> Dict[str, float]:
    """``<name>_median_s`` of each model's inference forward, the models taking turns (the order
    reversed every round), after one untimed forward each."""
    times: Dict[str, List[float]] = {name: [] for name in models}
    order = list(models.items())
    with torch.no_grad(), autocast:
        for _, model in order:
            model(x)
        for i in range(repeat):
            for name, model in order if i % 2 == 0 else order[::-1]:
                sync(device)
                start = time.perf_counter()
                model(x)
                sync(device)
                times[name].append(time.perf_counter() - start)
    return {f'{name}_median_s': statistics.median(t) for name, t in times.items()}


def step_flops(model: torch.nn.Module, x: torch.Tensor, mode: str) -> int:
    """FLOPs of one benchmark step: 2 per multiply-accumulate of a forward (convolutions,
    linear layers, matrix products, attention), three forwards' worth for forward+backward."""
    forward = 2 * count_macs(model, x)
    return forward if mode == 'fwd' else 3 * forward


def matmul_roof(device: str, dtype: str, size: int = 4096, warmup: int = 2,
                repeat: int = 5) -> Dict[str, Any]:
    """GFLOP/s of a ``size x size`` matrix product (2 FLOPs per multiply-add), the median of
    ``repeat`` after ``warmup``: what this machine reaches on the easiest dense work.

    On the CPU in fp32 two libraries can run the product: ``torch.mm`` calls the BLAS (MKL,
    which runs its AVX2 code on AMD processors) and oneDNN's inner product (what
    ``mmhybrid.accel``'s linear layers run) picks its kernels by instruction set. Both are timed
    (``kernels``: GFLOP/s of each) and the roof is the faster."""
    torch_dtype = AUTOCAST_DTYPES[dtype] or torch.float32
    a, b = (torch.randn(size, size, device=device, dtype=torch_dtype) for _ in range(2))
    products = {'torch.mm': lambda: torch.mm(a, b)}
    if device == 'cpu' and torch_dtype == torch.float32 and accel_internals.ONEDNN_LINEAR:
        products['onednn'] = lambda: linear_layers.inner_product(a, b)
    medians = {}
    for name, product in products.items():
        times = []
        for i in range(warmup + repeat):
            start = time.perf_counter()
            product()
            sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
        medians[name] = statistics.median(times)
    kernels = {name: 2 * size**3 / median / 1e9 for name, median in medians.items()}
    best = min(medians, key=medians.get)
    return dict(device=device, dtype=dtype, size=size, repeat=repeat, median_s=medians[best],
                gflops_per_s=kernels[best], kernel=best, kernels=kernels)


def _cuda_sdpa_backends() -> Dict[str, bool]:
    b = torch.backends.cuda
    return dict(flash=b.flash_sdp_enabled(), mem_efficient=b.mem_efficient_sdp_enabled(),
                math=b.math_sdp_enabled())


def worker_main() -> None:
    """The worker process: runs the job given as JSON in ``sys.argv[1]`` (:func:`measure`, or
    :func:`matmul_roof` for a job with ``roof=True``), prints the result as JSON."""
    job = json.loads(sys.argv[1])
    if job.pop('roof', False):
        result = matmul_roof(**job)
    else:
        result = measure(**job)
    sys.stdout.write(json.dumps(result) + '\n')


def run_worker(job: Dict[str, Any],
               err_stream: Optional[TextIO] = None) -> Optional[Dict[str, Any]]:
    """Runs :func:`measure` on ``job`` in a fresh Python process that imports this same mmhybrid;
    returns its result, or ``None`` after writing the failure to ``err_stream`` (stderr)."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get('PYTHONPATH')) if p)
    cmd = [sys.executable, '-c', 'from mmhybrid.utils.benchmark import worker_main; worker_main()',
           json.dumps(job)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        (err_stream or sys.stderr).write(f'failed: {job}\n{proc.stderr[-2000:]}\n')
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine() -> str:
    info = f'{platform.processor() or platform.machine()}, {os.cpu_count()} cores, ' \
           f'torch {torch.__version__}, {torch.get_num_threads()} threads'
    vendor = linear_layers.cpu_vendor()
    if vendor:
        info += f', {vendor}'
    info += (', optimised linear layers on oneDNN' if linear_layers.onednn_linear_default()
             else ', optimised linear layers on F.linear')
    if torch.cuda.is_available():
        info += f', {torch.cuda.get_device_name()}'
    return info


def roof_of(roofs: List[Dict[str, Any]], device: str, dtype: str) -> Optional[float]:
    """The mean matmul GFLOP/s of ``roofs`` measured for ``device`` and ``dtype``, or None."""
    values = [r['gflops_per_s'] for r in roofs if r['device'] == device and r['dtype'] == dtype]
    return statistics.mean(values) if values else None


def _kernels_note(roof: Dict[str, Any]) -> str:
    kernels = roof.get('kernels') or {}
    if len(kernels) < 2:
        return ''
    return ' (' + ', '.join(f'{name} {value:.0f}' for name, value in kernels.items()) + ')'


def to_markdown(results: List[Dict[str, Any]], command: str,
                roofs: Sequence[Dict[str, Any]] = ()) -> str:
    """The report: the matmul roof, one table row per measurement (with its GFLOP/s and share
    of the roof), then SDPA against explicit attention."""
    roofs = list(roofs)
    lines = ['| backbone | size | device | dtype | mode | attention | median ms | img/s | '
             'peak MB | GFLOP/s | % of roof |', '|---|---|---|---|---|---|---|---|---|---|---|']
    for r in results:
        roof = roof_of(roofs, r['device'], r['dtype'])
        gflops = r.get('gflops_per_s')
        share = f'{100 * gflops / roof:.0f}%' if gflops is not None and roof else '-'
        lines.append(f"| {r['spec']} | {r['size'][0]}x{r['size'][1]} | {r['device']} | "
                     f"{r['dtype']} | {r['mode']} | {r['attention']}"
                     f"{', compiled' * bool(r.get('compile'))}"
                     f"{' (frozen)' * bool(r.get('freezing'))}"
                     f"{', optimised' * bool(r.get('optimize'))} | "
                     f"{r['median_s'] * 1e3:.1f} | {r['images_per_s']:.2f} | "
                     f"{r['peak_mem_mb']:.0f} | "
                     f"{'-' if gflops is None else f'{gflops:.1f}'} | {share} |")
    ratios = []
    for r in results:
        if r['attention'] != 'sdpa' or r.get('compile') or r.get('optimize'):
            continue
        ref = next((q for q in results if q['attention'] == 'explicit' and all(
            q[k] == r[k] for k in ('spec', 'size', 'device', 'dtype', 'mode'))), None)
        if ref:
            ratios.append(f"| {r['spec']} | {r['size'][0]}x{r['size'][1]} | {r['mode']} | "
                          f"{ref['median_s'] / r['median_s']:.2f}x | "
                          f"{r['peak_mem_mb']:.0f} / {ref['peak_mem_mb']:.0f} |")
    text = '\n'.join(lines) + compile_table(results) + optimize_table(results)
    if ratios:
        text += ('\n\nSDPA against explicit softmax attention, same run (speed-up = explicit time '
                 '/ SDPA time; peak memory SDPA / explicit, MB):\n\n| backbone | size | mode | '
                 'speed-up | peak MB |\n|---|---|---|---|---|\n' + '\n'.join(ratios))
    head = f'Command: `{command}`\n\nMachine: {machine()}\n\n'
    if roofs:
        first = roofs[0]
        head += (f"Matmul roof, same run (a {first['size']}x{first['size']} product, 2 FLOP per "
                 f"multiply-add, median of {first['repeat']}, the faster of `torch.mm` and, on "
                 "the CPU in fp32, oneDNN's; measured before and after the models): "
                 + '; '.join(f"{r['device']} {r['dtype']} {r['when']}: "
                             f"{r['gflops_per_s']:.0f} GFLOP/s{_kernels_note(r)}" for r in roofs)
                 + '. "GFLOP/s" counts the convolutions, linear layers, matrix products and '
                 'attention (a forward+backward step as three forwards); "% of roof" divides it '
                 'by the mean roof of its dtype.\n\n')
    return f'{head}{text}\n'


def _with_eager_rows(results: List[Dict[str, Any]],
                     variant: str) -> Iterator[Tuple[Dict[str, Any], Dict[str, Any]]]:
    """``(row, eager row)`` for every row measured as ``variant`` (``'compile'`` or
    ``'optimize'``) whose plain eager row (same backbone, size, dtype, mode, attention and batch)
    is in ``results``."""
    keys = ('spec', 'size', 'device', 'dtype', 'mode', 'attention', 'batch')
    for r in results:
        eager = next((q for q in results if not q.get('compile') and not q.get('optimize')
                      and all(q[k] == r[k] for k in keys)), None) if r.get(variant) else None
        if eager:
            yield r, eager


def compile_table(results: List[Dict[str, Any]]) -> str:
    """Eager against ``torch.compile`` of the same rows (speed-up = eager time / compiled time),
    with the compile time (the first call's extra time); empty without compiled rows."""
    rows = [f"| {r['spec']} | {r['size'][0]}x{r['size'][1]} | {r['dtype']} | "
            f"{r['mode']}{' (frozen)' * bool(r.get('freezing'))} | "
            f"{eager['median_s'] * 1e3:.1f} | "
            f"{r['median_s'] * 1e3:.1f} | {eager['median_s'] / r['median_s']:.2f}x | "
            f"{r.get('compile_s', float('nan')):.0f} |"
            for r, eager in _with_eager_rows(results, 'compile')]
    if not rows:
        return ''
    return ('\n\nEager against `torch.compile` (inductor), same run (speed-up = eager time / '
            'compiled time; compile s = the first call\'s extra time; "frozen": inference '
            'compiled with `mmhybrid.utils.compile_frozen`):\n\n| backbone | size | '
            'dtype | mode | eager ms | compiled ms | speed-up | compile s |\n'
            '|---|---|---|---|---|---|---|---|\n' + '\n'.join(rows))


def optimize_table(results: List[Dict[str, Any]]) -> str:
    """Eager inference of the plain backbone against the same backbone after
    ``mmhybrid.optimize_for_inference``, same run (speed-up = plain time / optimised time);
    empty without optimised rows."""
    rows = [f"| {r['spec']} | {r['size'][0]}x{r['size'][1]} | {r['dtype']} | "
            f"{r['ab_plain_median_s'] * 1e3:.1f} | {r['ab_optimized_median_s'] * 1e3:.1f} | "
            f"{r['ab_plain_median_s'] / r['ab_optimized_median_s']:.2f}x | "
            f"{plain['peak_mem_mb']:.0f} / {r['peak_mem_mb']:.0f} |"
            for r, plain in _with_eager_rows(results, 'optimize') if 'ab_plain_median_s' in r]
    if not rows:
        return ''
    return ('\n\nPlain inference against `mmhybrid.optimize_for_inference` (plain / optimised '
            'ms: the two in one process, forwards alternating; speed-up = their ratio; peak MB: '
            'the plain row\'s process / the optimised row\'s):\n\n| backbone | size | dtype | '
            'plain ms | optimised ms | speed-up | peak MB |\n|---|---|---|---|---|---|---|\n'
            + '\n'.join(rows))


def markers(key: str) -> Tuple[str, str]:
    return f'<!-- benchmark:begin {key} -->', f'<!-- benchmark:end {key} -->'


def report_key(device: str, modes: Sequence[str], compile: bool, optimize: bool = False) -> str:
    """The block of the page a run's report goes to: ``device`` (e.g. ``'cpu'``), or for a run
    with ``compile`` ``'<device>-compile'``, and ``'<device>-compile-train'`` when it measured
    only training steps (``modes == ['fwdbwd']``); a run with ``optimize`` (and no ``compile``)
    ``'<device>-optimize'``."""
    if not compile:
        return device + '-optimize' * bool(optimize)
    return device + '-compile' + '-train' * (list(modes) == ['fwdbwd'])


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
        tail = rest.split(end, 1)[1].lstrip('\n')
        # One blank line between the block and what followed it (a table must not run on).
        text = head + block + ('\n' + tail if tail else '')
    elif text:
        text = text.rstrip('\n') + '\n\n' + block
    else:
        text = ('# Benchmarks\n\nGenerated by `tools/benchmark.py`; regenerate with the command '
                'below.\n\n' + block)
    atomic_write_bytes(text.encode(), path)


def run_benchmark(specs: Sequence[str],
                  sizes: Sequence[Union[str, Sequence[int]]],
                  device: Optional[str] = None,
                  dtypes: Sequence[str] = ('fp32', ),
                  modes: Sequence[str] = ('fwd', 'fwdbwd'),
                  batch: int = 1,
                  warmup: int = 2,
                  repeat: int = 5,
                  kwargs: Optional[Dict[str, Any]] = None,
                  compare_reference: bool = False,
                  json_path: Optional[str] = None,
                  markdown_path: Optional[str] = None,
                  command: str = '',
                  stream: Optional[TextIO] = None,
                  roof_size: int = 4096,
                  compile: bool = False,
                  optimize: bool = False) -> List[Dict[str, Any]]:
    """Measures every (spec, size, dtype, mode[, attention]) in its own process, writes a line
    per measurement and then the markdown report to ``stream`` (stdout), and returns the results.

    Args:
        specs: ``family:arch`` names, or ``['all']`` for :data:`~.build.DEFAULT_SPECS`.
        sizes: ``'224'``, ``'800x1344'`` or (H, W).
        device: ``'cpu'`` or ``'cuda'`` (default: cuda if present).
        dtypes: Any of ``'fp32'``, ``'bf16'`` and ``'fp16'`` (autocast to bfloat16 / float16;
            forward+backward steps run without a loss scaler).
        modes: ``'fwd'`` (eval, no grad) and/or ``'fwdbwd'`` (train mode, backward).
        batch: Images per step.
        warmup: Untimed steps first.
        repeat: Timed steps (the median is reported).
        kwargs: Extra backbone arguments.
        compare_reference: Also measure with :func:`explicit_attention`.
        json_path: Write the machine, command and results here as JSON.
        markdown_path: Write the report into this page, in the block of ``device``
            (:func:`write_report`; the block is named by :func:`report_key`, so that a
            compiled run does not replace the eager table, nor a compiled training run the
            compiled inference table).
        command: The command line, quoted in the report.
        stream: Where progress and the report go (default: stdout).
        roof_size: Side of the square matrices of the matmul roof (:func:`matmul_roof`),
            measured before and after the models for every dtype.
        compile: Also measure each row under ``torch.compile`` (next to its eager row).
        optimize: Also measure each inference row after ``mmhybrid.optimize_for_inference``,
            alternating with the plain backbone in one process (next to its plain row).

    Raises:
        ValueError: A spec names no registered backbone.
    """
    stream = stream or sys.stdout
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    roofs = []

    def measure_roofs(when):
        for dtype in dtypes:
            roof = run_worker(dict(roof=True, device=device, dtype=dtype, size=roof_size))
            if roof:
                roofs.append(dict(roof, when=when))
                stream.write(f"matmul roof ({device} {dtype}, {when}): "
                             f"{roof['gflops_per_s']:.0f} GFLOP/s\n")

    measure_roofs('before')
    results = []
    for spec in resolve_specs(list(specs)):
        for size in map(parse_size, sizes):
            for dtype in dtypes:
                for mode in modes:
                    variants = [(False, False, False)] + [(True, False, False)] * bool(
                        compare_reference) + [(False, True, False)] * bool(compile) + [
                            (False, False, True)] * bool(optimize and mode == 'fwd')
                    for reference, compiled, optimized in variants:
                        job = dict(spec=spec, size=size, device=device, dtype=dtype, mode=mode,
                                   reference=reference, warmup=warmup, repeat=repeat,
                                   batch=batch, kwargs=kwargs or {}, compile=compiled,
                                   optimize=optimized)
                        result = run_worker(job)
                        variant = ('compiled' if compiled else 'optimised' if optimized
                                   else 'eager')
                        if result:
                            results.append(result)
                            stream.write(f"{spec:20s} {size[0]}x{size[1]:<5d} {dtype} {mode:7s} "
                                         f"{result['attention']:8s} "
                                         f"{variant:8s} "
                                         f"{result['median_s'] * 1e3:9.1f} ms"
                                         f"  {result['peak_mem_mb']:8.0f} MB"
                                         f"  {result['gflops_per_s']:7.1f} GFLOP/s\n")
                            stream.flush()
    measure_roofs('after')
    if json_path:
        with open(json_path, 'w') as f:
            json.dump(dict(machine=machine(), command=command, roofs=roofs, results=results), f,
                      indent=1)
    report = to_markdown(results, command, roofs)
    if markdown_path:
        write_report(markdown_path, report, key=report_key(device, modes, compile, optimize))
    stream.write(report + '\n')
    return results
