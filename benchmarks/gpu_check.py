#!/usr/bin/env python
"""GPU checks of mmhybrid in one prepared run (not run by CI; benchmarks/README.md, "On a GPU").

    bash benchmarks/prepare_gpu_bundle.sh          # once, with network: benchmarks/gpu_bundle/
    bash benchmarks/gpu_check.sh --results R.jsonl # on the GPU machine, which needs no network
    bash benchmarks/gpu_check.sh --dry-run         # every part on the CPU, tiny sizes, fp32/bf16

Parts, in priority order, each under a time cap (``--cap PART=SECONDS``) and all under one
deadline (``--deadline-s``):

- ``env``: GPU, driver, torch, CUDA and cuDNN versions, the TF32 settings, package versions.
- ``side_by_side``: the authors' unmodified code against mmhybrid's backbone, same weights, same
  input, in one process per model: CrossFormer-S (ICLR'22 LDA and regional), UniFormer-S
  (hybrid, windows of 14), CMT-S, HAT-Net-S, TransCNN-S, VAN-B2 at 800x1344 (HAT-Net 896x1344,
  TransCNN 768x1280; the authors' CMT built for that size), batch 2, forward+backward in train
  mode, fp32 (TF32 off) and autocast bf16 and fp16. Per side: median step time, median
  train-mode forward time and growth of ``torch.cuda.max_memory_allocated`` over one step; the
  sides alternate step by step (the order reversed every round). The outputs of both sides are
  compared once (fp32, eval) before timing.
- ``sdpa``: the ``scaled_dot_product_attention`` kernels each attending family runs in one
  training step (torch profiler), fp32 and bf16, forward and backward.
- ``train``: ``tools/train.py --amp`` on the synthetic shapes data, one det (Mask R-CNN) and one
  seg (Semantic FPN) config per family, a few dozen iterations from scratch at constant
  learning rate, then a run resumed from the mid-run checkpoint: losses finite and falling, the
  same final iteration and optimizer steps, and the loss of the first iteration after resuming
  equal within 1e-3 (``randomness.deterministic``: every iteration reseeded).

Results are JSON lines appended to ``--results`` and flushed as each is measured, so a run cut
short keeps what it measured; each row's ``key`` names what it measured, and a later run skips
the keys already present (rows with ``status`` ``error`` too, unless ``--retry-failed``). Each
model is measured in a subprocess whose time limit is what is left of its part's cap.

Everything comes from the bundle that benchmarks/prepare_gpu_bundle.sh prepared (``--bundle``):
the authors' files at pinned commits (their dead mmcv 1.x / mmdet 2.x imports get the in-memory
stand-ins of benchmarks/side_by_side.py; timm 0.4.12 from its wheel), the wheels of the packages
the GPU machine lacks, and the shapes data. A bundle without the authors' files (prepared with
``--no-authors``, as the test suite does) runs the side-by-side harness with mmhybrid's own model
on both sides, marked ``authors: stand-in`` in every row. Where mmcv's compiled ops are missing
(mmcv's Python package alone), benchmarks/mmcv_ops_stand_in.py stands in for the ops that Mask
R-CNN's training step calls.
"""
import argparse
import concurrent.futures
import copy
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _path in (str(REPO), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

PARTS = ('env', 'side_by_side', 'sdpa', 'train')
# Seconds per part, in a 10-minute device call: side by side first.
CAPS = dict(env=60, side_by_side=300, sdpa=90, train=240)
DEADLINE_S = 540
# A dry run is not bounded by a device call: caps that let a shared 2-core CPU finish.
DRY_CAPS = dict(env=60, side_by_side=1200, sdpa=600, train=900)
DRY_DEADLINE_S = 2700
DTYPES = ('fp32', 'bf16', 'fp16')
DRY_DTYPES = ('fp32', 'bf16')
SBS_MODELS = ('crossformer-s', 'crossformer-s-regional', 'uniformer-s', 'cmt-s', 'hatnet-s',
              'transcnn-s', 'van-b2')
SDPA_MODELS = ('crossformer-s', 'uniformer-s', 'cmt-s', 'hatnet-s', 'transcnn-s')  # VAN: none
SDPA_DTYPES = ('fp32', 'bf16')
# Dry-run inputs: the smallest each authors' model takes (CMT: multiples of 32; HAT-Net: stage
# maps divisible by its windows 8, 7, 7; TransCNN: by 8, 8, 8).
DRY_SIZES = {'hatnet-s': (224, 224), 'transcnn-s': (128, 128)}
DRY_SIZE = (64, 96)
# One det and one seg config per family (TransCNN and HAT-Net each).
TRAIN_CONFIGS = (
    'det/maskrcnn_crossformer_s_1x', 'seg/fpn_crossformer_s_80k',
    'det/maskrcnn_uniformer_s_1x', 'seg/fpn_uniformer_s_80k',
    'det/maskrcnn_cmt_s_1x', 'seg/fpn_cmt_s_80k',
    'det/maskrcnn_hatnet_s_1x', 'seg/fpn_hatnet_s_80k',
    'det/maskrcnn_transcnn_s_1x', 'seg/fpn_transcnn_s_80k',
    'det/maskrcnn_van_b2_1x', 'seg/fpn_van_b2_40k',
)
DRY_TRAIN_CONFIGS = ('det/maskrcnn_van_b0_1x', 'seg/fpn_van_b0_40k')
# Training schedule: det epochs of ``det_images / 2`` iterations (batch 2), resumed from the
# middle epoch; seg iterations, resumed from the middle one.
FULL = dict(batch=2, warmup=2, repeat=8, det_images=16, det_epochs=4, seg_iters=32,
            det_scale=(1333, 800), seg_crop=(512, 512), amp=True, jobs=4)
DRY = dict(batch=1, warmup=0, repeat=1, det_images=4, det_epochs=2, seg_iters=4,
           det_scale=(64, 64), seg_crop=(64, 64), amp=False, jobs=1)
NEXT_LOSS_TOL = 1e-3
# Mixed precision goal against the authors' code (same autocast dtype).
GOAL_STEP_RATIO, GOAL_PEAK_RATIO = 0.77, 0.7

_write_lock = threading.Lock()


# ----------------------------------------------------------------------------- results file

def read_rows(path: Path) -> List[Dict[str, Any]]:
    """The rows of a results file; a last line cut short by a kill is ignored."""
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def done_keys(path: Path, retry_failed: bool = False) -> set:
    return {row['key'] for row in read_rows(path)
            if 'key' in row and not (retry_failed and row.get('status') == 'error')}


def append_row(path: Path, row: Dict[str, Any]) -> None:
    """Appends one JSON line and makes it durable before the next measurement starts."""
    row = dict(row, time=time.strftime('%Y-%m-%dT%H:%M:%S%z'))
    with _write_lock:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, 'ab+') as f:
            f.seek(0, os.SEEK_END)
            if f.tell():
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b'\n':  # a line cut short by a killed run: end it first
                    f.write(b'\n')
            f.write((json.dumps(row) + '\n').encode())
            f.flush()
            os.fsync(f.fileno())
    print(f"[gpu_check] {row['key']}: {row.get('status', 'ok')}", flush=True)


# ----------------------------------------------------------------------------- bundle

def load_manifest(bundle: Path) -> Dict[str, Any]:
    path = bundle / 'manifest.json'
    if not path.is_file():
        raise SystemExit(f'gpu_check: {bundle} is not a prepared bundle (no manifest.json); run '
                         f'benchmarks/prepare_gpu_bundle.sh first')
    return json.loads(path.read_text())


def authors_present(bundle: Path, model: str) -> bool:
    return model in load_manifest(bundle).get('authors', {})


def timm_path(bundle: Path, work: Path) -> Path:
    """timm 0.4.12 (the authors' files need it) unpacked from the bundle's wheel into ``work``."""
    wheels = sorted((bundle / 'wheels').glob('timm-0.4.12-*.whl'))
    if not wheels:
        raise RuntimeError(f'no timm 0.4.12 wheel in {bundle}/wheels')
    target = work / 'timm-0.4.12'
    if not (target / 'timm').is_dir():
        with zipfile.ZipFile(wheels[0]) as zf:
            zf.extractall(target)
    return target


# ----------------------------------------------------------------------------- subprocesses

def run_capped(cmd: List[str], timeout: float, log: Path,
               env: Optional[Dict[str, str]] = None) -> Tuple[Optional[int], str]:
    """Runs ``cmd`` in its own process group, output to ``log``; kills the whole group (data
    loader workers too) after ``timeout`` seconds. Returns (exit code or None when killed, the
    log's tail)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, 'w') as out:
        # Its own process group (not session): a kill of the whole run still reaches it.
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                process_group=0)
        try:
            code: Optional[int] = proc.wait(timeout=max(timeout, 1))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = None
    return code, log.read_text(errors='replace')[-3000:]


def worker_cmd(kind: str, opts: argparse.Namespace, *extra: str) -> List[str]:
    cmd = [sys.executable, str(Path(__file__)), f'_{kind}', *extra, '--bundle', str(opts.bundle),
           '--results', str(opts.results), '--work', str(opts.work), '--dtypes', *opts.dtypes]
    if opts.retry_failed:
        cmd.append('--retry-failed')
    if opts.dry_run:
        cmd.append('--dry-run')
    return cmd


# ----------------------------------------------------------------------------- workers

def exit_with_parent() -> None:
    """Ends this worker within a second of its parent's death (a run killed at its time
    limit must not leave a worker measuring on, or appending to the results)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _device():
    import torch
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def _sync(device: str) -> None:
    import torch
    if device == 'cuda':
        torch.cuda.synchronize()


def _fp32_strict() -> Dict[str, Any]:
    """TF32 off for the fp32 rows; returns the settings as they are now."""
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return dict(matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32,
                cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                float32_matmul_precision=torch.get_float32_matmul_precision())


def _autocast(device: str, dtype: str):
    import torch
    torch_dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(dtype, torch.float32)
    return torch.autocast(device_type=device, dtype=torch_dtype, enabled=dtype != 'fp32')


def _dist_version(name: str) -> Optional[str]:
    from importlib import metadata
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def env_worker(opts: argparse.Namespace) -> None:
    import platform

    import torch

    import mmcv_ops_stand_in
    stand_in = mmcv_ops_stand_in.install()
    device = _device()
    row: Dict[str, Any] = dict(
        key='env', device=device, dry_run=opts.dry_run, python=platform.python_version(),
        torch=torch.__version__, cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        cpu_count=os.cpu_count(),
        tf32_defaults=dict(matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32,
                           cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                           float32_matmul_precision=torch.get_float32_matmul_precision()),
        tf32_in_fp32_rows=False,
        packages={name: _dist_version(name) for name in (
            'mmengine', 'mmcv', 'mmcv-lite', 'mmdet', 'mmsegmentation', 'numpy', 'torchvision')},
        mmcv_ops='stand-in (benchmarks/mmcv_ops_stand_in.py)' if stand_in else 'compiled',
        bundle=load_manifest(opts.bundle).get('summary'))
    if device == 'cuda':
        props = torch.cuda.get_device_properties(0)
        row.update(gpu=props.name, capability=list(torch.cuda.get_device_capability()),
                   gpu_memory_gib=round(props.total_memory / 2**30, 1),
                   multiprocessors=props.multi_processor_count,
                   sdpa_backends_enabled=dict(
                       flash=torch.backends.cuda.flash_sdp_enabled(),
                       mem_efficient=torch.backends.cuda.mem_efficient_sdp_enabled(),
                       cudnn=torch.backends.cuda.cudnn_sdp_enabled(),
                       math=torch.backends.cuda.math_sdp_enabled()))
        try:
            row['driver'] = subprocess.run(
                ['nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader'],
                capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError) as error:
            row['driver'] = f'unknown ({error})'
    else:
        row['processor'] = platform.processor() or platform.machine()
    append_row(opts.results, row)


def _settings(opts: argparse.Namespace) -> Dict[str, Any]:
    return dict(DRY if opts.dry_run else FULL)


def _size(opts: argparse.Namespace, model: str) -> Tuple[int, int]:
    import side_by_side
    if opts.dry_run:
        return DRY_SIZES.get(model, DRY_SIZE)
    return tuple(side_by_side.MODELS[model]['gpu_size'])


def _build_ours_seeded(model: str):
    """mmhybrid's backbone of ``model`` from the registry, initialised from seed 0."""
    import torch

    import mmhybrid  # noqa: F401  (registers the backbones)
    import side_by_side
    from mmhybrid.registry import MODELS as REGISTRY
    ours = dict(side_by_side.MODELS[model]['ours'])
    torch.manual_seed(0)
    return REGISTRY.build(dict(ours, type=f"mmhybrid.{ours['type']}", out_indices=(0, 1, 2, 3)))


def _build_pair(model: str, opts: argparse.Namespace, size):
    """(authors' model, mmhybrid's, what the authors' side is)."""
    import side_by_side
    work = opts.work / 'side_by_side' / model
    work.mkdir(parents=True, exist_ok=True)
    if not authors_present(opts.bundle, model):
        ours = _build_ours_seeded(model)
        return copy.deepcopy(ours), ours, 'stand-in: mmhybrid\'s own model (the bundle holds no ' \
                                          'authors\' files)'
    path = str(timm_path(opts.bundle, opts.work))
    sys.path.insert(0, path)
    try:
        authors, ours = side_by_side.build_both(model, None, work, size, bundle=opts.bundle,
                                                save_outputs=False)
    finally:
        sys.path.remove(path)
    info = side_by_side.MODELS[model]
    return authors, ours, f"{info['repo']}@{info['commit'][:8]}:{info['file']}"


def _outputs(model, x) -> List:
    out = model(x)
    return list(out.values()) if isinstance(out, dict) else list(out)


def _loss(outs) -> Any:
    return sum(o.float().mean() for o in outs)


def side_by_side_worker(model: str, opts: argparse.Namespace) -> None:
    import torch

    import mmcv_ops_stand_in
    mmcv_ops_stand_in.install()
    settings = _settings(opts)
    device = _device()
    tf32 = _fp32_strict()
    size = _size(opts, model)
    keys = done_keys(opts.results, opts.retry_failed)
    todo = [d for d in opts.dtypes if f'side_by_side/{model}/{d}' not in keys]
    if not todo:
        return
    authors, ours, source = _build_pair(model, opts, size)
    models = dict(authors=authors.to(device), ours=ours.to(device))
    batch = settings['batch']
    x = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(1)).to(device)
    with torch.no_grad():  # the same model: outputs equal (fp32, eval)
        for m in models.values():
            m.eval()
        expected = _outputs(models['authors'], x)
        got = _outputs(models['ours'], x)
        diff = max((g.float() - e.float()).abs().max().item() for g, e in zip(got, expected))
        ref = max(e.abs().max().item() for e in expected)
        del expected, got
    base = dict(model=model, size=list(size), batch=batch, device=device, authors=source,
                max_abs_diff=diff, ref_max_abs=ref, tf32=tf32, dry_run=opts.dry_run,
                warmup=settings['warmup'], repeat=settings['repeat'])
    for m in models.values():
        m.train()
    for dtype in todo:
        row = dict(key=f'side_by_side/{model}/{dtype}', dtype=dtype, **base)
        row.update(_measure_pair(models, x, dtype, device, settings['warmup'],
                                 settings['repeat']))
        append_row(opts.results, row)


def _measure_pair(models: Dict[str, Any], x, dtype: str, device: str, warmup: int,
                  repeat: int) -> Dict[str, Any]:
    """Per side: growth of the allocated peak over one step, median step (forward+backward)
    and train-mode forward times, the sides alternating; then ours over the authors'."""
    import torch
    autocast = _autocast(device, dtype)

    def step(model):
        with autocast:
            outs = _outputs(model, x)
        _loss(outs).backward()
        model.zero_grad(set_to_none=True)

    def forward(model):
        with autocast:
            outs = _outputs(model, x)
        del outs

    result: Dict[str, Any] = {}
    alive = {} if device == 'cuda' else dict(models)  # a CPU has no allocator peak to read
    for name, model in models.items() if device == 'cuda' else ():
        try:
            _sync(device)
            if device == 'cuda':
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
                start_bytes = torch.cuda.memory_allocated()
            step(model)  # the first step also warms up
            _sync(device)
            if device == 'cuda':
                result[f'{name}_peak_mb'] = (torch.cuda.max_memory_allocated()
                                             - start_bytes) / 2**20
            alive[name] = model
        except torch.cuda.OutOfMemoryError as error:
            result[f'{name}_error'] = f'out of memory: {str(error)[:300]}'
            model.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
    times: Dict[str, List[float]] = {f'{n}_{what}': [] for n in alive for what in ('step', 'fwd')}
    order = list(alive.items())
    for i in range(warmup + repeat):
        for name, model in order if i % 2 == 0 else order[::-1]:
            for what, run in (('step', step), ('fwd', forward)):
                _sync(device)
                start = time.perf_counter()
                run(model)
                _sync(device)
                if i >= warmup:
                    times[f'{name}_{what}'].append(time.perf_counter() - start)
    for key, values in times.items():
        if values:
            result[f'{key}_ms'] = 1e3 * statistics.median(values)
            result[f'{key}_min_ms'] = 1e3 * min(values)
    if 'authors_step_ms' in result and 'ours_step_ms' in result:
        result['step_ratio'] = result['ours_step_ms'] / result['authors_step_ms']
        result['ours_step_over_fwd'] = result['ours_step_ms'] / result['ours_fwd_ms']
    if result.get('authors_peak_mb') and 'ours_peak_mb' in result:
        result['peak_ratio'] = result['ours_peak_mb'] / result['authors_peak_mb']
    if dtype != 'fp32' and 'step_ratio' in result and 'peak_ratio' in result:
        result['goal_met'] = (result['step_ratio'] <= GOAL_STEP_RATIO
                              and result['peak_ratio'] <= GOAL_PEAK_RATIO)
    return result


# SDPA's ATen ops and the backend each stands for.
SDPA_OPS = {
    '_scaled_dot_product_flash_attention': 'flash',
    '_scaled_dot_product_flash_attention_for_cpu': 'flash (cpu)',
    '_scaled_dot_product_efficient_attention': 'mem_efficient',
    '_scaled_dot_product_cudnn_attention': 'cudnn',
    '_scaled_dot_product_fused_attention_overrideable': 'overrideable',
    '_scaled_dot_product_attention_math': 'math',
}


def sdpa_worker(model: str, opts: argparse.Namespace) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    import mmcv_ops_stand_in
    mmcv_ops_stand_in.install()
    settings = _settings(opts)
    device = _device()
    tf32 = _fp32_strict()
    size = _size(opts, model)
    keys = done_keys(opts.results, opts.retry_failed)
    todo = [d for d in SDPA_DTYPES if d in opts.dtypes and f'sdpa/{model}/{d}' not in keys]
    if not todo:
        return
    net = _build_ours_seeded(model).to(device).train()
    x = torch.randn(settings['batch'], 3, *size, generator=torch.Generator().manual_seed(1))
    x = x.to(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == 'cuda' else [])
    for dtype in todo:
        autocast = _autocast(device, dtype)

        def step():
            with autocast:
                outs = _outputs(net, x)
            _loss(outs).backward()
            net.zero_grad(set_to_none=True)

        step()
        _sync(device)
        with profile(activities=activities) as prof:
            step()
            _sync(device)
        ops: Dict[str, int] = {}
        kernels: Dict[str, float] = {}
        for event in prof.key_averages():
            name = event.key
            base = name.split('::')[-1]
            if base.endswith('_backward'):
                base = base[:-len('_backward')]
            if name.startswith('aten::') and (base in SDPA_OPS or 'attention' in base):
                ops[name] = event.count
            device_us = getattr(event, 'device_time_total', None)
            if device_us is None:
                device_us = getattr(event, 'cuda_time_total', 0)
            lowered = name.lower()
            if device == 'cuda' and device_us and not name.startswith('aten::') and any(
                    w in lowered for w in ('flash', 'fmha', 'attention', 'attn', 'softmax')):
                kernels[name[:160]] = round(device_us, 1)

        def backends(backward: bool) -> List[str]:
            found = set()
            for op in ops:
                base = op.split('::')[-1]
                if op.endswith('_backward') == backward:
                    base = base[:-len('_backward')] if backward else base
                    if base in SDPA_OPS:
                        found.add(SDPA_OPS[base])
            if backward and not found and backends(False):
                # SDPA's math path has no backward op of its own; another forward without one
                # ran under a custom autograd function or was recomputed.
                found = {'math (autograd of its matmul/softmax)' if backends(False) == ['math']
                         else 'no SDPA backward op'}
            return sorted(found)

        top = dict(sorted(kernels.items(), key=lambda kv: -kv[1])[:8])
        append_row(opts.results, dict(
            key=f'sdpa/{model}/{dtype}', model=model, dtype=dtype, size=list(size),
            batch=settings['batch'], device=device, tf32=tf32, dry_run=opts.dry_run,
            forward=backends(False), backward=backends(True), aten_ops=ops,
            attention_kernels_us=top))


def train_tool(argv: List[str]) -> None:
    """tools/train.py with ``argv``, in this process after the mmcv ops stand-in (if needed)."""
    import runpy

    import mmcv_ops_stand_in
    mmcv_ops_stand_in.install()
    sys.argv = [str(REPO / 'tools' / 'train.py')] + argv
    runpy.run_path(sys.argv[0], run_name='__main__')


# ----------------------------------------------------------------------------- training

DET_OVERRIDE = '''_base_ = [{base!r}]
data_root = {root!r}
classes = {classes!r}
metainfo = dict(classes=classes, palette={palette!r})
model = dict(
    backbone=dict(init_cfg=None),
    roi_head=dict(bbox_head=dict(num_classes=len(classes)),
                  mask_head=dict(num_classes=len(classes))))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale={scale!r}, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(batch_size=2, num_workers=2, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline,
                 indices={images}))
train_cfg = dict(max_epochs={epochs}, val_interval=1000)
default_hooks = dict(checkpoint=dict(interval=1), logger=dict(interval=1))
'''

SEG_OVERRIDE = '''_base_ = [{base!r}]
data_root = {root!r}
classes = {classes!r}
metainfo = dict(classes=classes, palette={palette!r})
crop_size = {crop!r}
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(init_cfg=None),
    decode_head=dict(num_classes=len(classes)))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=crop_size, ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=2, num_workers=2,
    dataset=dict(type='BaseSegDataset', data_root=data_root, metainfo=metainfo,
                 img_suffix='.jpg', seg_map_suffix='.png', reduce_zero_label=False,
                 pipeline=train_pipeline))
train_cfg = dict(max_iters={iters}, val_interval=100000)
default_hooks = dict(checkpoint=dict(interval={half}), logger=dict(interval=1))
'''

# Both: no evaluation, a constant learning rate (the configs' 500- or 1500-iteration warm-ups
# would leave a few dozen iterations at a thousandth of it), every iteration reseeded.
COMMON_OVERRIDE = '''
param_scheduler = []
randomness = dict(seed=0, deterministic=True)
val_dataloader = None
val_evaluator = None
val_cfg = None
test_dataloader = None
test_evaluator = None
test_cfg = None
'''


def write_override(name: str, opts: argparse.Namespace, folder: Path) -> Tuple[Path, str, str,
                                                                                int]:
    """The config that trains ``name`` (``det/...`` or ``seg/...``) on the bundle's shapes data;
    returns it, the mid-run and final checkpoint names and the final iteration."""
    from mmhybrid.datasets import SEG_CLASSES, SEG_PALETTE, SHAPE_CLASSES, SHAPE_PALETTE
    s = _settings(opts)
    base = REPO / 'configs' / f'{name}.py'
    data = opts.bundle / 'data'
    if name.startswith('det/'):
        images, epochs = s['det_images'], s['det_epochs']
        text = DET_OVERRIDE.format(base=str(base), root=f"{data / 'coco'}/",
                                   classes=tuple(SHAPE_CLASSES),
                                   palette=[list(c) for c in SHAPE_PALETTE],
                                   scale=tuple(s['det_scale']), images=images, epochs=epochs)
        mid, final = f'epoch_{epochs // 2}.pth', f'epoch_{epochs}.pth'
        last_iter = epochs * images // 2
    else:
        iters = s['seg_iters']
        text = SEG_OVERRIDE.format(base=str(base), root=str(data / 'ade20k'),
                                   classes=tuple(SEG_CLASSES),
                                   palette=[list(c) for c in SEG_PALETTE],
                                   crop=tuple(s['seg_crop']), iters=iters, half=iters // 2)
        mid, final, last_iter = f'iter_{iters // 2}.pth', f'iter_{iters}.pth', iters
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / f"{name.replace('/', '_')}_shapes.py"
    config.write_text(text + COMMON_OVERRIDE)
    return config, mid, final, last_iter


def read_losses(work_dir: Path) -> Dict[int, float]:
    """``iter -> loss`` from mmengine's ``vis_data/scalars.json`` of every run in ``work_dir``."""
    losses = {}
    for path in sorted(work_dir.glob('*/vis_data/scalars.json')):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if 'loss' in record and 'iter' in record:
                losses[int(record['iter'])] = float(record['loss'])
    return losses


def compare_checkpoints(a: Path, b: Path) -> Dict[str, Any]:
    """Iteration counts of two checkpoints and how far apart their optimizer states are."""
    import torch
    ca = torch.load(a, map_location='cpu', weights_only=False)  # written by this run
    cb = torch.load(b, map_location='cpu', weights_only=False)
    sa, sb = ca['optimizer'].get('state', {}), cb['optimizer'].get('state', {})
    steps_equal = sa.keys() == sb.keys()
    worst = 0.0
    for key in sa if steps_equal else ():
        for name, va in sa[key].items():
            vb = sb[key][name]
            if name == 'step':
                steps_equal &= float(va) == float(vb)
            elif torch.is_tensor(va):
                scale = va.abs().max().item() or 1.0
                worst = max(worst, (va.float() - vb.float()).abs().max().item() / scale)
    lrs = [[g['lr'] for g in c['optimizer']['param_groups']] for c in (ca, cb)]
    return dict(iter_first=ca['meta'].get('iter'), iter_resumed=cb['meta'].get('iter'),
                optimizer_steps_equal=steps_equal, optimizer_state_max_rel_diff=worst,
                lrs_equal=lrs[0] == lrs[1], loss_scaler=cb['optimizer'].get('loss_scaler'))


def train_one(name: str, opts: argparse.Namespace, deadline: float) -> None:
    """One config: a run from scratch, then one resumed from its mid-run checkpoint."""
    if deadline - time.monotonic() <= 1:
        print(f'[gpu_check] part train: cap reached, {name} left for a later run', flush=True)
        return
    s = _settings(opts)
    folder = opts.work / 'train' / name.replace('/', '_')
    config, mid, final, last_iter = write_override(name, opts, folder)
    amp = ['--amp'] if s['amp'] else []
    first, resumed = folder / 'first', folder / 'resumed'
    row: Dict[str, Any] = dict(key=f'train/{name}', config=f'configs/{name}.py', amp=s['amp'],
                               dry_run=opts.dry_run, final_iter_expected=last_iter)
    start = time.monotonic()
    tool = [sys.executable, str(Path(__file__)), '_train', '--', str(config), '--work-dir']
    code, tail = run_capped(tool + [str(first), *amp], deadline - time.monotonic(),
                            folder / 'first.log')
    if code is None:
        print(f'[gpu_check] train/{name}: cut at the cap, left for a later run', flush=True)
        return
    if code != 0 or not (first / final).is_file():
        append_row(opts.results, dict(row, status='error', error=f'first run exit {code}',
                                      log_tail=tail))
        return
    row['first_run_s'] = round(time.monotonic() - start, 1)
    code, tail = run_capped(tool + [str(resumed), '--resume', str(first / mid), *amp],
                            deadline - time.monotonic(), folder / 'resumed.log')
    if code is None:
        print(f'[gpu_check] train/{name}: resumed run cut at the cap', flush=True)
        return
    if code != 0 or not (resumed / final).is_file():
        append_row(opts.results, dict(row, status='error', error=f'resumed run exit {code}',
                                      log_tail=tail))
        return
    losses, after = read_losses(first), read_losses(resumed)
    values = [losses[i] for i in sorted(losses)]
    third = max(len(values) // 3, 1)
    resume_iter = min(after) - 1 if after else None
    row.update(losses=values, losses_finite=all(math.isfinite(v) for v in values),
               loss_first_third=statistics.mean(values[:third]),
               loss_last_third=statistics.mean(values[-third:]), resumed_from=mid,
               resumed_first_iter=min(after) if after else None)
    row['losses_falling'] = row['loss_last_third'] < row['loss_first_third']
    if after and resume_iter + 1 in losses:
        row['next_loss_first'] = losses[resume_iter + 1]
        row['next_loss_resumed'] = after[resume_iter + 1]
        row['next_loss_abs_diff'] = abs(row['next_loss_first'] - row['next_loss_resumed'])
    row.update(compare_checkpoints(first / final, resumed / final))
    row['resume_ok'] = (row['iter_first'] == row['iter_resumed'] == last_iter
                        and row['optimizer_steps_equal'] and row['lrs_equal']
                        and row.get('next_loss_abs_diff', math.inf) <= NEXT_LOSS_TOL)
    row['status'] = 'ok' if row['losses_finite'] and row['resume_ok'] else 'check_failed'
    append_row(opts.results, row)
    for path in list(first.glob('*.pth')) + list(resumed.glob('*.pth')):
        path.unlink()  # a few GB per config otherwise


# ----------------------------------------------------------------------------- the run

def run(opts: argparse.Namespace) -> int:
    manifest = load_manifest(opts.bundle)
    opts.results.parent.mkdir(parents=True, exist_ok=True)
    opts.work.mkdir(parents=True, exist_ok=True)
    caps = dict(DRY_CAPS if opts.dry_run else CAPS)
    for item in opts.cap or []:
        part, _, seconds = item.partition('=')
        if part not in PARTS or not seconds:
            raise SystemExit(f'gpu_check: --cap wants PART=SECONDS with PART in {PARTS}, got '
                             f'{item!r}')
        caps[part] = float(seconds)
    deadline = time.monotonic() + (opts.deadline_s or (DRY_DEADLINE_S if opts.dry_run
                                                       else DEADLINE_S))
    models = opts.models or list(SBS_MODELS)
    unknown = [m for m in models if m not in SBS_MODELS]
    if unknown:
        raise SystemExit(f'gpu_check: unknown model(s) {unknown}; choose from {SBS_MODELS}')
    configs = opts.train_configs or list(DRY_TRAIN_CONFIGS if opts.dry_run else TRAIN_CONFIGS)
    missing = [c for c in configs if not (REPO / 'configs' / f'{c}.py').is_file()]
    if missing:
        raise SystemExit(f'gpu_check: no config configs/<name>.py for {missing}')
    print(f"[gpu_check] bundle {opts.bundle} ({manifest.get('summary')}), results "
          f"{opts.results}", flush=True)
    for part in opts.parts or PARTS:
        part_end = min(deadline, time.monotonic() + caps[part])
        if time.monotonic() >= deadline:
            print(f'[gpu_check] deadline reached before part {part}', flush=True)
            break
        keys = done_keys(opts.results, opts.retry_failed)
        started = time.monotonic()
        if part == 'env':
            jobs = [] if 'env' in keys else [('env', [])]
        elif part == 'side_by_side':
            jobs = [('side_by_side', [m]) for m in models
                    if any(f'side_by_side/{m}/{d}' not in keys for d in opts.dtypes)
                    and f'side_by_side/{m}/error' not in keys]
        elif part == 'sdpa':
            jobs = [('sdpa', [m]) for m in models if m in SDPA_MODELS
                    and any(f'sdpa/{m}/{d}' not in keys for d in SDPA_DTYPES
                            if d in opts.dtypes)
                    and f'sdpa/{m}/error' not in keys]
        else:
            todo = [c for c in configs if f'train/{c}' not in keys]
            jobs_n = opts.jobs or _settings(opts)['jobs']
            with concurrent.futures.ThreadPoolExecutor(max_workers=jobs_n) as pool:
                for future in [pool.submit(train_one, c, opts, part_end) for c in todo]:
                    future.result()
            print(f'[gpu_check] part train: {time.monotonic() - started:.0f} s', flush=True)
            continue
        for kind, args in jobs:
            left = part_end - time.monotonic()
            if left <= 1:
                print(f'[gpu_check] part {part}: cap reached, {kind} {args} left for a later run',
                      flush=True)
                break
            log = opts.work / 'logs' / f"{kind}_{'_'.join(args) or 'all'}.log"
            code, tail = run_capped(worker_cmd(kind, opts, *args), left, log)
            if code is None:
                print(f'[gpu_check] {kind} {args}: cut at the cap (log {log})', flush=True)
            elif code != 0:
                append_row(opts.results, dict(key=f"{kind}/{'/'.join(args)}/error"
                                              if args else f'{kind}/error', status='error',
                                              error=f'exit {code}', log_tail=tail))
        print(f'[gpu_check] part {part}: {time.monotonic() - started:.0f} s', flush=True)
    return 0


def _fmt(value: Any, spec: str = '.1f') -> str:
    return '–' if value is None else format(value, spec)


def report(rows: List[Dict[str, Any]]) -> str:
    """Markdown tables of a results file: the machine, side by side, SDPA kernels, training."""
    by_key = {row['key']: row for row in rows if 'key' in row}
    lines = []
    env = by_key.get('env')
    if env:
        tf32 = env.get('tf32_defaults', {})
        lines += [f"Machine: {env.get('gpu', env.get('processor', env['device']))}, driver "
                  f"{env.get('driver', '–')}, torch {env['torch']}, CUDA {env.get('cuda')}, cuDNN "
                  f"{env.get('cudnn')}, Python {env['python']}; TF32 by default: matmul "
                  f"{tf32.get('matmul_allow_tf32')}, cuDNN {tf32.get('cudnn_allow_tf32')} "
                  f"(off in the fp32 rows); mmcv ops: {env.get('mmcv_ops')}.", '']
    sbs = [r for k, r in by_key.items() if k.startswith('side_by_side/') and 'dtype' in r]
    if sbs:
        lines += ['| model | size | dtype | authors step ms | ours step ms | step ratio | '
                  'authors MB | ours MB | peak ratio | ours step / fwd | max abs diff |',
                  '|---|---|---|---|---|---|---|---|---|---|---|']
        for r in sbs:
            lines.append(
                f"| {r['model']} | {r['size'][0]}x{r['size'][1]} | {r['dtype']} | "
                f"{_fmt(r.get('authors_step_ms'))} | {_fmt(r.get('ours_step_ms'))} | "
                f"{_fmt(r.get('step_ratio'), '.2f')} | {_fmt(r.get('authors_peak_mb'), '.0f')} | "
                f"{_fmt(r.get('ours_peak_mb'), '.0f')} | {_fmt(r.get('peak_ratio'), '.2f')} | "
                f"{_fmt(r.get('ours_step_over_fwd'), '.2f')} | "
                f"{_fmt(r.get('max_abs_diff'), '.1e')} |")
        lines.append('')
    sdpa = [r for k, r in by_key.items() if k.startswith('sdpa/') and 'dtype' in r]
    if sdpa:
        lines += ['| model | dtype | forward | backward |', '|---|---|---|---|']
        lines += [f"| {r['model']} | {r['dtype']} | {', '.join(r['forward']) or '–'} | "
                  f"{', '.join(r['backward']) or '–'} |" for r in sdpa]
        lines.append('')
    train = [r for k, r in by_key.items() if k.startswith('train/')]
    if train:
        lines += ['| config | amp | status | loss first → last third | next loss diff | '
                  'final iter | optimizer steps equal |', '|---|---|---|---|---|---|---|']
        for r in train:
            lines.append(
                f"| {r.get('config', r['key'])} | {r.get('amp')} | {r.get('status', 'ok')} | "
                f"{_fmt(r.get('loss_first_third'), '.3f')} → "
                f"{_fmt(r.get('loss_last_third'), '.3f')} | "
                f"{_fmt(r.get('next_loss_abs_diff'), '.1e')} | {r.get('iter_resumed', '–')} | "
                f"{r.get('optimizer_steps_equal', '–')} |")
        lines.append('')
    errors = [k for k, r in by_key.items() if r.get('status') == 'error']
    if errors:
        lines.append('Errors: ' + ', '.join(errors))
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].startswith('_'):
        exit_with_parent()
    if argv and argv[0] == '_train':
        sep = argv.index('--')
        return train_tool(argv[sep + 1:]) or 0
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('command', nargs='?', default='run',
                        choices=['run', 'report', '_env', '_side_by_side', '_sdpa'],
                        help='run the checks (default), or print the markdown tables of '
                        '--results (report)')
    parser.add_argument('model', nargs='?', help=argparse.SUPPRESS)
    parser.add_argument('--bundle', type=Path, default=HERE / 'gpu_bundle')
    parser.add_argument('--results', type=Path, default=None,
                        help='JSON lines (default: $OUT/gpu_check.jsonl where OUT is set, else '
                        'benchmarks/gpu_results/gpu_check[_dry].jsonl)')
    parser.add_argument('--work', type=Path, default=Path('/tmp/gpu_check_work'),
                        help='scratch: weights, training runs, logs')
    parser.add_argument('--dry-run', action='store_true',
                        help='every part on this machine\'s device at tiny sizes, 1 repeat')
    parser.add_argument('--parts', nargs='+', choices=PARTS)
    parser.add_argument('--models', nargs='+', help=f'of {", ".join(SBS_MODELS)}')
    parser.add_argument('--dtypes', nargs='+', choices=DTYPES,
                        help='of the side-by-side rows (the SDPA rows: fp32, bf16 of these); '
                        'default all, with --dry-run fp32 bf16 (fp16 is emulated on a CPU, '
                        'minutes per step of the larger models)')
    parser.add_argument('--train-configs', nargs='+',
                        help='det/<name> or seg/<name> under configs/ (default: one of each per '
                        'family; with --dry-run VAN-B0\'s)')
    parser.add_argument('--cap', nargs='+', metavar='PART=SECONDS', help='time cap per part')
    parser.add_argument('--deadline-s', type=float,
                        help=f'the whole run\'s time limit (default {DEADLINE_S} s; dry '
                        f'{DRY_DEADLINE_S} s)')
    parser.add_argument('--jobs', type=int, help='training runs at once (default 4; dry 1)')
    parser.add_argument('--retry-failed', action='store_true',
                        help='measure again what earlier runs recorded as errors')
    opts = parser.parse_args(argv)
    if opts.dtypes is None:
        opts.dtypes = list(DRY_DTYPES if opts.dry_run else DTYPES)
    opts.bundle = opts.bundle.resolve()
    opts.work = opts.work.resolve()
    if opts.results is None:
        name = 'gpu_check_dry.jsonl' if opts.dry_run else 'gpu_check.jsonl'
        out = os.environ.get('OUT')
        opts.results = Path(out) / name if out else HERE / 'gpu_results' / name
    opts.results = opts.results.resolve()
    if opts.command == 'run':
        return run(opts)
    if opts.command == 'report':
        if not opts.results.is_file():
            raise SystemExit(f'gpu_check: no results file {opts.results}')
        print(report(read_rows(opts.results)))
        return 0
    if opts.command == '_env':
        env_worker(opts)
    elif opts.command == '_side_by_side':
        side_by_side_worker(opts.model, opts)
    else:
        sdpa_worker(opts.model, opts)
    return 0


if __name__ == '__main__':
    sys.exit(main())
