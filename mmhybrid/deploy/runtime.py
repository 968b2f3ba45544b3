"""Running an exported file in onnxruntime, with the post-processing of
:mod:`mmhybrid.deploy.postprocess`: what ``tools/infer.py --onnx`` and a served model use."""
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import postprocess
from .export import read_metadata


class ExportedModel:
    """An exported segmenter or detector (the ``.onnx`` file of ``tools/deploy/export_onnx.py``
    and, for two-stage detectors, its head files beside it).

    ``predict(image)`` takes ``(1, 3, H, W)`` float32 pixels as the config's test pipeline
    gives them (resized, channel order as loaded) and returns numpy results:
    segmenters ``seg_logits (C, H, W)`` and ``sem_seg (H, W)``; detectors ``bboxes``,
    ``scores``, ``labels`` (and ``masks``) in the original image.
    """

    def __init__(self, path: str, providers: Sequence[str] = ('CPUExecutionProvider', )) -> None:
        import onnxruntime as ort
        self.path = path
        self.meta = read_metadata(path)
        self.kind = self.meta['kind']
        self.session = ort.InferenceSession(path, providers=list(providers))
        self.heads = {}
        for kind, head in self.meta.get('roi_heads', {}).items():
            head_path = osp.join(osp.dirname(path), head['file'])
            if not osp.isfile(head_path):
                raise FileNotFoundError(f'{path} needs its {kind} head file {head_path}')
            self.heads[kind] = ort.InferenceSession(head_path, providers=list(providers))
        self.aligners = postprocess.make_aligners(self.meta) if self.heads else None

    @property
    def dataset_meta(self) -> Dict[str, Any]:
        return self.meta.get('dataset_meta', {})

    def check_input(self, image: np.ndarray) -> None:
        if image.ndim != 4 or image.shape[:2] != (1, 3):
            raise ValueError(f'expected a (1, 3, H, W) image, got shape {image.shape}')
        height, width = image.shape[2:]
        minimum = self.meta['min_size']
        if min(height, width) < minimum:
            raise ValueError(f'input {height}x{width} is below the exported model\'s minimum '
                             f'size {minimum}x{minimum}')
        fixed = self.meta.get('input_shape')
        if fixed and [height, width] != list(fixed):
            raise ValueError(f'{self.path} was exported for {fixed[0]}x{fixed[1]} inputs only '
                             f'(not --dynamic); got {height}x{width}')

    def run(self, image: np.ndarray) -> List[np.ndarray]:
        """The raw outputs of the main file (``meta['output_names']``)."""
        image = np.ascontiguousarray(image, dtype=np.float32)
        self.check_input(image)
        return self.session.run(None, {'image': image})

    def run_head(self, kind: str, roi_feats: np.ndarray) -> List[np.ndarray]:
        return self.heads[kind].run(None, {'roi_feats': roi_feats.astype(np.float32)})

    def predict(self, image: np.ndarray, scale_factor: Tuple[float, float] = (1., 1.),
                ori_shape: Optional[Tuple[int, int]] = None) -> Dict[str, np.ndarray]:
        outputs = self.run(image)
        img_shape = tuple(image.shape[2:])
        if self.kind == 'segmenter':
            logits = outputs[0][0]
            return dict(seg_logits=logits, sem_seg=logits.argmax(0))
        if self.kind == 'one_stage':
            return postprocess.dense_head_predict(outputs, self.meta, img_shape, scale_factor)
        return postprocess.two_stage_predict(outputs, self.meta, self.run_head, img_shape,
                                             scale_factor, ori_shape, self.aligners)
