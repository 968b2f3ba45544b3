"""The demo behind ``make demo`` (``tools/demo.py``): train and evaluate a detector and a segmenter
on a CPU.

:func:`run_demo`

1. writes the synthetic shapes data (COCO and ADE20K layouts) unless an identical tree is already
   there;
2. trains Mask R-CNN and Semantic FPN (the demo configs: a small VAN backbone from scratch) with
   the given training command (``tools/train.py``); the two trainings run side by side, one CPU
   thread each (two processes of one thread use two cores better than one process of two
   threads, and much better when the cores are shared);
3. evaluates the final checkpoints with the given test command (``tools/test.py``: mmdet's
   ``CocoMetric``, mmseg's ``IoUMetric``);
4. writes pictures: predicted boxes and masks on validation images, the segmentation picture
   (image / ground truth / prediction label maps on one palette, background included; the label
   maps it shows go to ``seg_predictions.npz``), and the loss / metric curves read from
   mmengine's ``scalars.json``;
5. writes ``summary.json`` (with the per-class IoU / accuracy table of mmseg's ``IoUMetric``) and
   prints a summary.

Progress, the children's output and the summary go to stdout: this is the demo's console.
"""
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from mmengine.config import DictAction

from ..datasets.shapes import (SEG_CLASSES, SEG_PALETTE, SHAPE_CLASSES, SHAPE_PALETTE, ShapesSpec,
                               generate_shapes)

FULL_SPEC = ShapesSpec(num_train=320, num_val=40, image_size=128, colour_by_class=True)
QUICK_SPEC = ShapesSpec(num_train=8, num_val=4, image_size=128, colour_by_class=True)
# Training iterations of `--quick`: the detector only runs (3), the segmenter learns to find the
# background, most of every image (40: a few seconds more), so that the smoke test can check that
# its metrics are those of a model that learned.
QUICK_ITERS = {'det': 3, 'seg': 40}
# The metrics the summary reports, as mmdet's CocoMetric and mmseg's IoUMetric name them.
SUMMARY_METRICS = {'det': ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP',
                           'coco/segm_mAP_50'),
                   'seg': ('mIoU', 'aAcc')}


class DemoError(RuntimeError):
    """A step of the demo failed or left out what the summary reports."""


def check_metrics(metrics: Dict[str, dict], files: Dict[str, Path]) -> None:
    """Raises :class:`DemoError` naming every summary metric a test did not write (a missing
    metric must not read as a score of 0).

    Args:
        metrics: ``{'det': {...}, 'seg': {...}}`` as read from the tests' metrics files.
        files: The metrics file of each task, named in the message.
    """
    missing = [f'{task}: {key} (in {files[task]})' for task, values in metrics.items()
               for key in SUMMARY_METRICS[task]
               if not isinstance(values.get(key), (int, float))]
    if missing:
        raise DemoError('the test wrote no value for ' + ', '.join(missing))


def _say(text: str, end: str = '\n') -> None:
    sys.stdout.write(text + end)
    sys.stdout.flush()


def _env(threads: int) -> Dict[str, str]:
    env = dict(os.environ)
    for key in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS'):
        env[key] = str(threads)
    return env


def _stream(proc: subprocess.Popen, prefix: str, log_path: Path, keep: List[str]) -> None:
    """Copies a child's output to the console (prefixed) and to a log file."""
    with open(log_path, 'w') as log:
        for line in proc.stdout:
            log.write(line)
            keep.append(line)
            del keep[:-200]
            _say(f'{prefix} {line}', end='')


def _run_all(jobs: List[dict], parallel: bool, threads: int, cwd: Path) -> None:
    """Runs ``jobs`` (dict(name, cmd, log)) in ``cwd``, side by side or in order; raises on
    failure."""
    pending = list(jobs)
    while pending:
        batch = pending if parallel else pending[:1]
        pending = pending[len(batch):]
        running = []
        for job in batch:
            proc = subprocess.Popen(job['cmd'], cwd=cwd, env=_env(threads),
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    bufsize=1)
            tail: List[str] = []
            thread = threading.Thread(target=_stream,
                                      args=(proc, f"[{job['name']}]", job['log'], tail),
                                      daemon=True)
            thread.start()
            running.append((job, proc, thread, tail))
        for job, proc, thread, tail in running:
            proc.wait()
            thread.join()
            if proc.returncode != 0:
                raise DemoError(f"{job['name']} failed (exit {proc.returncode}); last lines:\n"
                                   + ''.join(tail[-40:]) + f"full log: {job['log']}")


def _cfg_options(task: str, data_root: Path, iters: Optional[int], quick: bool) -> List[str]:
    """Points the demo config at ``data_root`` (dataloaders and evaluator) and sets the length."""
    opts = []
    if task == 'det':
        root = f'{data_root / "coco"}/'
        opts += [f'train_dataloader.dataset.data_root={root}',
                 f'val_dataloader.dataset.data_root={root}',
                 f'test_dataloader.dataset.data_root={root}',
                 f'val_evaluator.ann_file={root}annotations/instances_val2017.json',
                 f'test_evaluator.ann_file={root}annotations/instances_val2017.json']
    else:
        root = str(data_root / 'ade20k')
        opts += [f'train_dataloader.dataset.data_root={root}',
                 f'val_dataloader.dataset.data_root={root}',
                 f'test_dataloader.dataset.data_root={root}']
    if quick:
        iters = QUICK_ITERS[task]
        opts += ['train_dataloader.batch_size=2', 'default_hooks.logger.interval=1']
    if iters is not None:
        opts += [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
                 f'default_hooks.checkpoint.interval={iters}']
    return opts


def _last_checkpoint(work_dir: Path) -> Path:
    marker = work_dir / 'last_checkpoint'
    if not marker.is_file():
        raise DemoError(f'no checkpoint was saved in {work_dir}')
    return Path(marker.read_text().strip())


def _latest_run(work_dir: Path) -> Path:
    """The newest ``<timestamp>/`` folder mmengine wrote in ``work_dir``."""
    runs = sorted(p for p in work_dir.iterdir() if p.is_dir() and p.name[:8].isdigit())
    if not runs:
        raise DemoError(f'no run folder in {work_dir}')
    return runs[-1]


def _metrics_file(work_dir: Path) -> Path:
    run = _latest_run(work_dir)
    return run / f'{run.name}.json'


def _test_metrics(work_dir: Path) -> dict:
    path = _metrics_file(work_dir)
    if not path.is_file():
        raise DemoError(f'no metrics file {path}')
    text = path.read_text()
    try:
        return json.loads(text)
    except ValueError:  # one JSON object per line
        return json.loads([line for line in text.splitlines() if line.strip()][-1])


def _read_scalars(work_dir: Path) -> List[dict]:
    run = _latest_run(work_dir)
    path = run / 'vis_data' / 'scalars.json'
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_curves(scalars: List[dict], loss_keys: List[str], metric_keys: List[str], title: str,
                out: Path, metric_scale: float = 1.0) -> None:
    """Training losses (left) and validation metrics (right) against the iteration."""
    import matplotlib  # only here: an optional dependency of the demo's pictures
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key in loss_keys:
        points = [(s['step'], s[key]) for s in scalars if key in s and 'lr' in s]
        if points:
            ax_loss.plot(*zip(*points), label=key)
    ax_loss.set_xlabel('iteration')
    ax_loss.set_title(f'{title}: training loss')
    ax_loss.set_yscale('log')
    ax_loss.legend(fontsize=7)
    for key in metric_keys:
        points = [(s['step'], s[key] * metric_scale) for s in scalars if key in s]
        if points:
            ax_metric.plot(*zip(*points), marker='o', label=key)
    ax_metric.set_xlabel('iteration')
    ax_metric.set_ylim(0, 1)
    ax_metric.set_title(f'{title}: validation')
    ax_metric.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def _val_images(folder: Path, count: int) -> List[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix == '.jpg')[:count]


def _bgr(rgb) -> tuple:
    return tuple(int(c) for c in rgb[::-1])


def draw_detections(config: Path, checkpoint: Path, images: List[Path], out: Path,
                    score_thr: float = 0.5, cfg_options: Optional[dict] = None) -> None:
    """Predicted boxes and masks on ``images`` (score >= ``score_thr``, else the 3 best), side by
    side in one PNG: the images on top, the predictions below."""
    # Imported here, not at the top: drawing needs OpenCV and mmdet, which cost seconds to import
    # and which the rest of the package does not need.
    import cv2
    from mmdet.apis import inference_detector, init_detector
    from mmdet.utils import register_all_modules
    register_all_modules()
    model = init_detector(str(config), str(checkpoint), device='cpu', cfg_options=cfg_options)
    tiles = []
    for path in images:
        img = cv2.imread(str(path))
        pred = inference_detector(model, img).pred_instances
        keep = pred.scores >= score_thr
        if not keep.any():  # a weak model: show its 3 best guesses rather than nothing
            keep = pred.scores >= pred.scores.topk(min(3, len(pred))).values[-1] \
                if len(pred) else keep
        pred = pred[keep]
        canvas = img.copy()
        masks = pred.masks.numpy() if 'masks' in pred else []
        for i, (box, label, score) in enumerate(
                zip(pred.bboxes.numpy(), pred.labels.numpy(), pred.scores.numpy())):
            colour = _bgr(SHAPE_PALETTE[int(label) % len(SHAPE_PALETTE)])
            if len(masks):
                m = masks[i].astype(bool)
                canvas[m] = (0.5 * canvas[m] + 0.5 * np.array(colour)).astype(np.uint8)
            x0, y0, x1, y1 = (int(round(v)) for v in box)
            cv2.rectangle(canvas, (x0, y0), (x1, y1), colour, 1)
            cv2.putText(canvas, f'{SHAPE_CLASSES[int(label)][:3]} {score:.2f}',
                        (x0, max(y0 - 2, 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (255, 255, 255), 1,
                        cv2.LINE_AA)
        tiles.append(np.vstack([img, canvas]))
    cv2.imwrite(str(out), cv2.resize(np.hstack(tiles), None, fx=2, fy=2,
                                     interpolation=cv2.INTER_NEAREST))


def label_panel(label_map: np.ndarray, palette: Sequence[Sequence[int]] = SEG_PALETTE
                ) -> np.ndarray:
    """A label map as an HxWx3 BGR picture: every pixel in the colour ``palette[label]`` (RGB,
    as in the dataset's metainfo; background too), labels outside the palette (mmseg's 255,
    "don't care") white."""
    colours = np.array([_bgr(c) for c in palette], np.uint8)
    label_map = np.asarray(label_map)
    panel = np.full(label_map.shape + (3,), 255, np.uint8)
    known = (label_map >= 0) & (label_map < len(colours))
    panel[known] = colours[label_map[known]]
    return panel


def compose_segmentation(images: Sequence[np.ndarray], gts: Sequence[np.ndarray],
                         preds: Sequence[np.ndarray],
                         classes: Sequence[str] = SEG_CLASSES,
                         palette: Sequence[Sequence[int]] = SEG_PALETTE,
                         scale: int = 2) -> np.ndarray:
    """The segmentation picture (BGR): one column per image of H x W px; rows: the image, the
    ground-truth label map, the predicted label map (both drawn by :func:`label_panel`, plain
    palette colours, no blending); everything enlarged ``scale`` times (nearest neighbour), so
    the prediction of image ``i`` lies at rows ``[2 H scale, 3 H scale)``, columns
    ``[i W scale, (i + 1) W scale)``; a legend strip (class colours and names) below."""
    import cv2
    tiles = [np.vstack([img, label_panel(gt, palette), label_panel(pred, palette)])
             for img, gt, pred in zip(images, gts, preds)]
    grid = np.hstack(tiles)
    grid = cv2.resize(grid, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    legend = np.full((24, grid.shape[1], 3), 255, np.uint8)
    x = 4
    text = 'rows: image / ground truth / prediction;'
    cv2.putText(legend, text, (x, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    x += cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)[0][0] + 10
    for name, colour in zip(classes, palette):
        cv2.rectangle(legend, (x, 5), (x + 14, 19), _bgr(colour), -1)
        cv2.rectangle(legend, (x, 5), (x + 14, 19), (128, 128, 128), 1)
        cv2.putText(legend, name, (x + 18, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
                    cv2.LINE_AA)
        x += 18 + cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)[0][0] + 12
    return np.vstack([grid, legend])


def draw_segmentation(config: Path, checkpoint: Path, images: List[Path], ann_dir: Path,
                      out: Path, cfg_options: Optional[dict] = None) -> Dict[str, np.ndarray]:
    """Writes :func:`compose_segmentation`'s picture of ``images`` to ``out`` and the label maps
    it shows to ``out`` with suffix ``.npz`` (``gt``, ``pred``: N x H x W); returns them."""
    # Imported here, not at the top: as in draw_detections, for OpenCV and mmseg.
    import cv2
    from mmseg.apis import inference_model, init_model
    from mmseg.utils import register_all_modules
    register_all_modules()
    model = init_model(str(config), str(checkpoint), device='cpu', cfg_options=cfg_options)
    classes = model.dataset_meta['classes']
    palette = model.dataset_meta['palette']
    imgs, gts, preds = [], [], []
    for path in images:
        img = cv2.imread(str(path))
        imgs.append(img)
        gts.append(cv2.imread(str(ann_dir / (path.stem + '.png')), cv2.IMREAD_GRAYSCALE))
        preds.append(inference_model(model, img).pred_sem_seg.data[0].numpy().astype(np.uint8))
    cv2.imwrite(str(out), compose_segmentation(imgs, gts, preds, classes, palette))
    maps = dict(gt=np.stack(gts), pred=np.stack(preds))
    np.savez_compressed(out.with_suffix('.npz'), **maps)
    return maps


def per_class_results(log_text: str) -> Dict[str, Dict[str, Optional[float]]]:
    """The last per-class table mmseg's ``IoUMetric`` logged (``per class results:``) as
    ``{'IoU': {class: percent}, 'Acc': {...}}`` (None where mmseg wrote nan: a class absent
    from both the ground truth and the prediction)."""
    start = log_text.rfind('per class results:')
    if start < 0:
        return {}
    header, rows = None, []
    for line in log_text[start:].splitlines()[1:]:
        line = line.strip()
        if line.startswith('+'):
            continue
        if not line.startswith('|'):
            if header is not None:
                break
            continue
        cells = [c.strip() for c in line.strip('|').split('|')]
        if header is None:
            header = cells
        else:
            rows.append(cells)
    if not header or header[0] != 'Class':
        return {}

    def number(text: str) -> Optional[float]:
        value = float(text)
        return None if np.isnan(value) else value

    return {key: {row[0]: number(row[i]) for row in rows}
            for i, key in enumerate(header) if i > 0}


def run_demo(det_config: Union[str, Path],
             seg_config: Union[str, Path],
             train_command: Sequence[str],
             test_command: Sequence[str],
             data_root: Union[str, Path],
             out_dir: Union[str, Path],
             quick: bool = False,
             iters: Optional[int] = None,
             threads: int = 1,
             sequential: bool = False,
             only: Optional[str] = None,
             cwd: Optional[Union[str, Path]] = None) -> dict:
    """Runs the demo (see the module's docstring) and returns its summary.

    Args:
        det_config: The Mask R-CNN demo config.
        seg_config: The Semantic FPN demo config.
        train_command: The command that trains, given CONFIG ``--work-dir`` DIR
            ``--cfg-options`` ... (``[python, 'tools/train.py']``).
        test_command: The command that tests, given CONFIG CHECKPOINT ``--work-dir`` DIR
            ``--cfg-options`` ... (``[python, 'tools/test.py']``).
        data_root: Where the synthetic data is written or found (quick: ``<data_root>_quick``).
        out_dir: Work dirs, logs, pictures and ``summary.json``.
        quick: A few iterations on a tiny tree (a smoke test).
        iters: Training iterations of each model (default: the configs').
        threads: Torch threads per training process.
        sequential: Train the two models one after the other instead of side by side.
        only: ``'det'`` or ``'seg'`` to run one model only.
        cwd: Where the commands run (default: the current folder).
    """
    start = time.perf_counter()
    cwd = Path(cwd or os.getcwd())
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    data_root = Path(data_root).resolve()
    spec = QUICK_SPEC if quick else FULL_SPEC
    if quick:
        data_root = data_root.with_name(data_root.name + '_quick')
    _say(f'[demo] synthetic data: {data_root} ({spec.num_train} train / {spec.num_val} val '
         f'images of {spec.image_size} px; reused when already there)')
    generate_shapes(data_root, spec=spec)

    tasks = [t for t in ('det', 'seg') if only in (None, t)]
    configs = {'det': Path(det_config), 'seg': Path(seg_config)}
    work_dirs = {t: out_dir / 'work_dirs' / t for t in tasks}
    options = {t: _cfg_options(t, data_root, iters, quick) for t in tasks}
    jobs = [dict(name=f'train-{t}', log=out_dir / f'train_{t}.log',
                 cmd=[*train_command, str(configs[t]), '--work-dir', str(work_dirs[t]),
                      '--cfg-options', *options[t]]) for t in tasks]
    _say(f'[demo] training {", ".join(tasks)} ({"in order" if sequential else "side by side"}'
         f', {threads} thread(s) each); logs: {out_dir}/train_*.log')
    t0 = time.perf_counter()
    _run_all(jobs, parallel=not sequential, threads=threads, cwd=cwd)
    train_time = time.perf_counter() - t0

    checkpoints = {t: _last_checkpoint(work_dirs[t]) for t in tasks}
    test_dirs = {t: out_dir / 'work_dirs' / f'{t}_test' for t in tasks}
    jobs = [dict(name=f'test-{t}', log=out_dir / f'test_{t}.log',
                 cmd=[*test_command, str(configs[t]), str(checkpoints[t]), '--work-dir',
                      str(test_dirs[t]), '--cfg-options', *options[t]])
            for t in tasks]
    t0 = time.perf_counter()
    _run_all(jobs, parallel=not sequential, threads=threads, cwd=cwd)
    test_time = time.perf_counter() - t0
    metrics = {t: _test_metrics(test_dirs[t]) for t in tasks}
    check_metrics(metrics, {t: _metrics_file(test_dirs[t]) for t in tasks})
    seg_per_class = {}
    if 'seg' in tasks:
        run = _latest_run(test_dirs['seg'])
        seg_per_class = per_class_results((run / f'{run.name}.log').read_text())

    # pictures
    pictures = []
    cfg_opts = {t: dict(o.split('=', 1) for o in options[t]) for t in tasks}
    if 'det' in tasks:
        scalars = _read_scalars(work_dirs['det'])
        plot_curves(scalars, ['loss', 'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox',
                              'loss_mask'],
                    ['coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP', 'coco/segm_mAP_50'],
                    'Mask R-CNN', out_dir / 'det_curves.png')
        draw_detections(configs['det'], checkpoints['det'],
                        _val_images(data_root / 'coco' / 'val2017', 6),
                        out_dir / 'det_predictions.png',
                        cfg_options=_typed(cfg_opts['det']))
        pictures += [out_dir / 'det_curves.png', out_dir / 'det_predictions.png']
    if 'seg' in tasks:
        scalars = _read_scalars(work_dirs['seg'])
        plot_curves(scalars, ['loss', 'decode.loss_ce'], ['mIoU', 'aAcc', 'mAcc'],
                    'Semantic FPN', out_dir / 'seg_curves.png', metric_scale=0.01)
        draw_segmentation(configs['seg'], checkpoints['seg'],
                          _val_images(data_root / 'ade20k' / 'images' / 'validation', 6),
                          data_root / 'ade20k' / 'annotations' / 'validation',
                          out_dir / 'seg_predictions.png', cfg_options=_typed(cfg_opts['seg']))
        pictures += [out_dir / 'seg_curves.png', out_dir / 'seg_predictions.png',
                     out_dir / 'seg_predictions.npz']

    total = time.perf_counter() - start
    summary = dict(total_s=round(total, 1), train_s=round(train_time, 1),
                   test_s=round(test_time, 1), metrics=metrics, seg_per_class=seg_per_class,
                   checkpoints={t: str(c) for t, c in checkpoints.items()},
                   pictures=[str(p) for p in pictures], quick=quick)
    (out_dir / 'summary.json').write_text(json.dumps(summary, indent=1) + '\n')
    _say(format_summary(summary, out_dir))
    return summary


def _typed(options: Dict[str, str]) -> dict:
    """``--cfg-options`` strings to values, as mmengine's DictAction parses them."""
    return {k: DictAction._parse_iterable(v) for k, v in options.items()}


def format_summary(summary: dict, out_dir: Path) -> str:
    """The summary the demo ends with: metrics, times and where the outputs are."""
    m = summary['metrics']
    lines = ['', '=' * 72, 'mmhybrid demo' + (' (quick smoke run)' if summary['quick'] else ''),
             '-' * 72]
    if 'det' in m:
        d = m['det']
        lines.append(f"Mask R-CNN + VAN (from scratch): bbox mAP {d['coco/bbox_mAP']:.3f}"
                     f"  bbox AP50 {d['coco/bbox_mAP_50']:.3f}"
                     f"  segm mAP {d['coco/segm_mAP']:.3f}"
                     f"  segm AP50 {d['coco/segm_mAP_50']:.3f}")
    if 'seg' in m:
        s = m['seg']
        lines.append(f"Semantic FPN + VAN (from scratch): mIoU {s['mIoU'] / 100:.3f}"
                     f"  aAcc {s['aAcc'] / 100:.3f}"
                     f"  (classes: {', '.join(SEG_CLASSES)}; background included)")
        iou = summary.get('seg_per_class', {}).get('IoU', {})
        if iou:
            lines.append('  IoU per class: ' + '  '.join(
                f"{name} {'n/a' if v is None else format(v / 100, '.3f')}"
                for name, v in iou.items()))
    lines += [f"time: {summary['total_s'] / 60:.1f} min in total (training "
              f"{summary['train_s'] / 60:.1f} min, testing {summary['test_s']:.0f} s)",
              f'outputs: {out_dir}/', *[f'  {p}' for p in summary['pictures']],
              f'  {out_dir}/summary.json, train_*.log, test_*.log, work_dirs/', '=' * 72]
    return '\n'.join(lines)
