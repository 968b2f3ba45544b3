"""Predictions on image files from PyTorch or from an exported ONNX file, drawn by mmdet's /
mmseg's visualizers (``tools/infer.py``).

Both paths read the images through the config's own test pipeline (resize, etc.), so they see
the same network input; the ONNX path runs :class:`~mmhybrid.deploy.runtime.ExportedModel` and
turns its numpy results into the same ``DetDataSample`` / ``SegDataSample`` fields.
"""
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence

import mmcv
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.structures import InstanceData, PixelData

from .export import build_model, load_weights


def _test_pipeline(cfg: Config) -> Compose:
    pipeline = []
    for step in cfg.test_dataloader.dataset.pipeline:
        if step['type'] in ('LoadAnnotations', 'mmdet.LoadAnnotations'):
            continue
        pipeline.append(dict(step))
    return Compose(pipeline)


def _prepare(pipeline: Compose, path: str) -> Dict[str, Any]:
    data = pipeline(dict(img_path=path))
    return dict(inputs=[data['inputs']], data_samples=[data['data_samples']])


def _onnx_sample(exported, data: Dict[str, Any]):
    sample = data['data_samples'][0]
    image = data['inputs'][0][None].float().numpy()
    meta = sample.metainfo
    ori_shape = tuple(meta['ori_shape'][:2])
    if exported.kind == 'segmenter':
        logits = torch.from_numpy(exported.run(image)[0])
        logits = F.interpolate(logits, size=ori_shape, mode='bilinear',
                               align_corners=exported.meta.get('align_corners', False))
        sample.pred_sem_seg = PixelData(data=logits[0].argmax(0, keepdim=True))
        sample.seg_logits = PixelData(data=logits[0])
        return sample
    scale = meta.get('scale_factor', (1., 1.))
    result = exported.predict(image, scale_factor=tuple(scale), ori_shape=ori_shape)
    instances = InstanceData(bboxes=torch.from_numpy(result['bboxes']),
                             scores=torch.from_numpy(result['scores']),
                             labels=torch.from_numpy(result['labels']))
    if 'masks' in result:
        instances.masks = torch.from_numpy(result['masks'])
    sample.pred_instances = instances
    return sample


def draw_predictions(config: str, checkpoint: str, images: Sequence[str], out_dir: str,
                     onnx: Optional[str] = None, score_thr: float = 0.3,
                     optimize: bool = True) -> List[str]:
    """Draws the predictions for ``images`` into ``out_dir``; returns the written files
    (``<image stem>_<pytorch|onnx>.png``). PyTorch runs the model optimised for CPU inference
    (``mmhybrid.optimize_for_inference``) unless ``optimize`` is False."""
    model, cfg = build_model(config)
    meta = load_weights(model, checkpoint)
    if optimize and onnx is None:
        from mmhybrid.accel import optimize_for_inference
        optimize_for_inference(model)
    dataset_meta = dict(meta.get('dataset_meta') or {})
    exported = None
    if onnx is not None:
        from .runtime import ExportedModel
        exported = ExportedModel(onnx)
        dataset_meta = dataset_meta or exported.dataset_meta
    if not dataset_meta:
        dataset_meta = dict(cfg.test_dataloader.dataset.get('metainfo') or {})
    if cfg.default_scope == 'mmdet':
        from mmdet.registry import VISUALIZERS
    else:
        from mmseg.registry import VISUALIZERS
    visualizer = VISUALIZERS.build(dict(cfg.visualizer, name=f'infer-{os.getpid()}',
                                        save_dir=None, vis_backends=None))
    visualizer.dataset_meta = dataset_meta
    pipeline = _test_pipeline(cfg)
    os.makedirs(out_dir, exist_ok=True)
    written = []
    backend = 'onnx' if exported is not None else 'pytorch'
    for path in images:
        if not osp.isfile(path):
            raise FileNotFoundError(f'image not found: {path}')
        data = _prepare(pipeline, path)
        if exported is not None:
            sample = _onnx_sample(exported, data)
        else:
            with torch.no_grad():
                sample = model.test_step(data)[0]
        picture = mmcv.imread(path, channel_order='rgb')
        target = osp.join(out_dir, f'{osp.splitext(osp.basename(path))[0]}_{backend}.png')
        kwargs = dict(pred_score_thr=score_thr) if cfg.default_scope == 'mmdet' else {}
        visualizer.add_datasample(osp.basename(path), picture, sample, draw_gt=False,
                                  show=False, out_file=target, **kwargs)
        written.append(target)
    return written
