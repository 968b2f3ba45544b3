"""Synthetic "shapes" datasets in COCO instance layout and ADE20K layout.

Small images of coloured circles, squares and triangles (random sizes, colours and rotations, a
few per image, possibly overlapping) on a noisy, smoothly varying background, with an instance mask
per shape. The same scenes are written in two layouts that mmdet's ``CocoDataset`` and mmseg's
segmentation datasets read unchanged:

COCO (``generate_coco_shapes``)::

    ROOT/annotations/instances_train2017.json   polygons, bboxes, areas; categories = SHAPE_CLASSES
    ROOT/annotations/instances_val2017.json
    ROOT/train2017/000000000001.jpg ...
    ROOT/val2017/...

ADE20K (``generate_ade20k_shapes``)::

    ROOT/images/training/shapes_000001.jpg        ROOT/annotations/training/shapes_000001.png
    ROOT/images/validation/...                    ROOT/annotations/validation/...

Detection (COCO layout) has the three shape classes ``SHAPE_CLASSES``; segmentation (ADE20K
layout) has four, ``SEG_CLASSES = ('background',) + SHAPE_CLASSES``: a label map stores the index
into ``SEG_CLASSES``, i.e. 0 for background and ``k + 1`` for shape class ``k`` (0-based in
``SHAPE_CLASSES``). Background is a real class, to be read with ``reduce_zero_label=False``: a
segmenter must find the shapes, not only tell them apart where a shape is known to be. The maps
have no "don't care" pixels (every pixel is background or one shape). ``SEG_PALETTE`` and
``SHAPE_PALETTE`` give the classes the same colours (background black).

Generation is deterministic (every image draws from ``numpy.random.default_rng((seed, split,
index))``, files are written in a fixed order with fixed encoder settings: the same seed gives the
same bytes with the same OpenCV build), cheap (64 train images of 128 px take well under a second)
and idempotent: a marker file ``.shapes.json`` records the parameters, and a second call with the
same parameters reuses the tree. Only numpy and OpenCV are needed (no mmdet/mmseg, no network).
"""
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

__all__ = [
    'SHAPE_CLASSES', 'SHAPE_PALETTE', 'SEG_CLASSES', 'SEG_PALETTE', 'ShapesSpec', 'Scene',
    'render_scene', 'generate_coco_shapes', 'generate_ade20k_shapes', 'generate_shapes'
]

SHAPE_CLASSES: Tuple[str, ...] = ('circle', 'square', 'triangle')
SHAPE_PALETTE: Tuple[Tuple[int, int, int], ...] = ((220, 20, 60), (0, 130, 200), (255, 200, 0))
# Semantic segmentation (ADE20K layout): background is class 0, shape class k is k + 1.
SEG_CLASSES: Tuple[str, ...] = ('background',) + SHAPE_CLASSES
SEG_PALETTE: Tuple[Tuple[int, int, int], ...] = ((0, 0, 0),) + SHAPE_PALETTE  # RGB

# 2: ADE20K layout read with background as class 0 of SEG_CLASSES (the marker lists the layout's
#    classes); 1: background ignored (reduce_zero_label=True).
_FORMAT_VERSION = 2
_MARKER = '.shapes.json'
_SPLITS = (('train', 0), ('val', 1))
_JPEG_QUALITY = 95


@dataclass(frozen=True)
class ShapesSpec:
    """Parameters of a synthetic shapes tree (recorded in the marker file).

    Args:
        num_train: Number of training images.
        num_val: Number of validation images.
        image_size: Side of the square images in pixels.
        min_shapes: Fewest shapes per image.
        max_shapes: Most shapes per image.
        min_scale: Smallest shape size (circumscribed radius) as a fraction of the image side.
        max_scale: Largest shape size as a fraction of the image side.
        max_overlap: Largest fraction of a new shape that may cover earlier shapes, and of an
            earlier shape's visible area that a new shape may hide.
        colour_by_class: When True every shape kind has its own hue family (circles red, squares
            blue, triangles yellow, each with jittered hue, saturation and brightness), so that a
            small model trained from scratch for a few minutes on a CPU tells them apart; when
            False the colours are random and only the form tells the classes apart (a harder
            task: several thousand iterations).
        seed: Seed of the generator.
    """

    num_train: int = 64
    num_val: int = 16
    image_size: int = 128
    min_shapes: int = 1
    max_shapes: int = 4
    min_scale: float = 0.1
    max_scale: float = 0.25
    max_overlap: float = 0.3
    colour_by_class: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ('num_train', 'num_val', 'image_size', 'min_shapes', 'max_shapes'):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
                raise ValueError(f'{name} must be a non-negative int, got {value!r}')
        if self.image_size < 32:
            raise ValueError(f'image_size must be >= 32, got {self.image_size}')
        if not 1 <= self.min_shapes <= self.max_shapes:
            raise ValueError(f'need 1 <= min_shapes <= max_shapes, got {self.min_shapes}, '
                             f'{self.max_shapes}')
        if not 0 < self.min_scale <= self.max_scale <= 0.5:
            raise ValueError(f'need 0 < min_scale <= max_scale <= 0.5, got {self.min_scale}, '
                             f'{self.max_scale}')
        if not 0 <= self.max_overlap <= 1:
            raise ValueError(f'max_overlap must be in [0, 1], got {self.max_overlap}')


@dataclass
class Scene:
    """One rendered image: ``image`` (HxWx3 uint8, BGR), ``labels`` (class indices) and
    ``masks`` (N x H x W bool, the visible part of each shape, in painting order)."""

    image: np.ndarray
    labels: List[int]
    masks: np.ndarray

    def semantic_map(self) -> np.ndarray:
        """HxW uint8 label map, indices into ``SEG_CLASSES`` (0 background, shape class k stored
        as k + 1)."""
        seg = np.zeros(self.image.shape[:2], np.uint8)
        for label, mask in zip(self.labels, self.masks):
            seg[mask] = label + 1
        return seg


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A muted, smoothly varying colour field with a faint texture and pixel noise."""
    grid = rng.uniform(60, 190, size=(4, 4, 3)).astype(np.float32)
    grey = grid.mean(axis=2, keepdims=True)
    grid = grey + 0.4 * (grid - grey)  # desaturated, so that the shapes stand out by form
    field = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    freq = rng.uniform(0.15, 0.5)
    angle = rng.uniform(0, np.pi)
    stripes = 8.0 * np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy))
    field += stripes[..., None]
    field += rng.normal(0, 8, size=field.shape).astype(np.float32)
    return np.clip(field, 0, 255).astype(np.uint8)


_CLASS_HUES = (0, 110, 28)  # OpenCV hue (0..180): red circles, blue squares, yellow triangles


def _shape_colour(rng: np.random.Generator, kind: int, by_class: bool) -> np.ndarray:
    if by_class:
        hue = (_CLASS_HUES[kind] + rng.uniform(-8, 8)) % 180
        hsv = np.array([[[hue, rng.uniform(150, 255), rng.uniform(170, 255)]]], np.float32)
        return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0].astype(np.float64)
    colour = rng.uniform(0, 255, size=3)
    colour[rng.integers(3)] = rng.uniform(200, 255)  # saturated, clearly visible
    return colour


def _polygon(kind: int, cx: float, cy: float, r: float, angle: float) -> Optional[np.ndarray]:
    if kind == 0:
        return None  # circles are drawn with cv2.circle
    corners = 4 if kind == 1 else 3
    t = angle + np.arange(corners) * (2 * np.pi / corners)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)


def _shape_mask(kind: int, cx: float, cy: float, r: float, angle: float,
                size: int) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    if kind == 0:
        cv2.circle(mask, (int(round(cx)), int(round(cy))), int(round(r)), 1, -1, cv2.LINE_8)
    else:
        pts = np.round(_polygon(kind, cx, cy, r, angle)).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1, cv2.LINE_8)
    return mask.astype(bool)


def render_scene(spec: ShapesSpec, split: int, index: int) -> Scene:
    """Renders image ``index`` of split ``split`` (0 train, 1 val) deterministically."""
    rng = np.random.default_rng((spec.seed, split, index))
    size = spec.image_size
    image = _background(rng, size)
    num = int(rng.integers(spec.min_shapes, spec.max_shapes + 1))
    labels: List[int] = []
    visible: List[np.ndarray] = []
    for _ in range(num):
        for _attempt in range(30):
            kind = int(rng.integers(len(SHAPE_CLASSES)))
            r = rng.uniform(spec.min_scale, spec.max_scale) * size
            # squares/triangles have a smaller area than the circle of the same radius
            r *= {0: 1.0, 1: 1.15, 2: 1.3}[kind]
            cx, cy = rng.uniform(r * 0.8, size - r * 0.8, size=2)
            angle = rng.uniform(0, 2 * np.pi)
            mask = _shape_mask(kind, cx, cy, r, angle, size)
            area = int(mask.sum())
            if area < 40:
                continue
            covered = np.zeros_like(mask)
            ok = True
            for vis in visible:
                hidden = int((vis & mask).sum())
                if hidden > spec.max_overlap * max(int(vis.sum()), 1):
                    ok = False
                    break
                covered |= vis
            if not ok or (covered & mask).sum() > spec.max_overlap * area:
                continue
            colour = _shape_colour(rng, kind, spec.colour_by_class)
            shade = rng.normal(0, 6, size=(size, size, 1))
            painted = np.clip(colour[None, None, :] + shade, 0, 255).astype(np.uint8)
            image[mask] = painted[mask]
            for vis in visible:
                vis &= ~mask
            labels.append(kind)
            visible.append(mask.copy())
            break
    masks = np.stack(visible) if visible else np.zeros((0, size, size), bool)
    return Scene(image=image, labels=labels, masks=masks)


def _mask_to_annotation(mask: np.ndarray) -> Optional[dict]:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    polygons = [c.reshape(-1).tolist() for c in contours if len(c) >= 3]
    if not polygons:
        return None
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    w, h = int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1
    return dict(segmentation=polygons, area=float(mask.sum()), bbox=[x0, y0, w, h], iscrowd=0)


def _encode_jpg(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    if not ok:
        raise RuntimeError('OpenCV failed to encode a JPEG')
    return buf.tobytes()


def _encode_png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode('.png', image, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise RuntimeError('OpenCV failed to encode a PNG')
    return buf.tobytes()


def _num_images(spec: ShapesSpec, split: str) -> int:
    return spec.num_train if split == 'train' else spec.num_val


def _write_coco(tmp: Path, spec: ShapesSpec) -> None:
    categories = [dict(id=i + 1, name=name, supercategory='shape')
                  for i, name in enumerate(SHAPE_CLASSES)]
    (tmp / 'annotations').mkdir(parents=True)
    image_id = 0
    ann_id = 0
    for split, split_id in _SPLITS:
        folder = tmp / f'{split}2017'
        folder.mkdir()
        images, annotations = [], []
        for index in range(_num_images(spec, split)):
            scene = render_scene(spec, split_id, index)
            image_id += 1
            file_name = f'{image_id:012d}.jpg'
            (folder / file_name).write_bytes(_encode_jpg(scene.image))
            images.append(dict(id=image_id, file_name=file_name, height=spec.image_size,
                               width=spec.image_size))
            for label, mask in zip(scene.labels, scene.masks):
                ann = _mask_to_annotation(mask)
                if ann is None:
                    continue
                ann_id += 1
                annotations.append(dict(id=ann_id, image_id=image_id, category_id=label + 1,
                                        **ann))
        content = dict(info=dict(description='mmhybrid synthetic shapes', version='1.0'),
                       licenses=[], images=images, annotations=annotations,
                       categories=categories)
        (tmp / 'annotations' / f'instances_{split}2017.json').write_text(
            json.dumps(content, sort_keys=True, separators=(',', ':')))


def _write_ade20k(tmp: Path, spec: ShapesSpec) -> None:
    for split, split_id in _SPLITS:
        ade_split = 'training' if split == 'train' else 'validation'
        img_dir = tmp / 'images' / ade_split
        ann_dir = tmp / 'annotations' / ade_split
        img_dir.mkdir(parents=True)
        ann_dir.mkdir(parents=True)
        for index in range(_num_images(spec, split)):
            scene = render_scene(spec, split_id, index)
            stem = f'shapes_{split}_{index + 1:06d}'
            (img_dir / f'{stem}.jpg').write_bytes(_encode_jpg(scene.image))
            (ann_dir / f'{stem}.png').write_bytes(_encode_png(scene.semantic_map()))


def _marker(layout: str, spec: ShapesSpec) -> dict:
    classes = SEG_CLASSES if layout == 'ade20k' else SHAPE_CLASSES
    return dict(format_version=_FORMAT_VERSION, layout=layout, classes=list(classes),
                **asdict(spec))


def _generate(root: Union[str, Path], layout: str, spec: ShapesSpec, writer) -> Path:
    root = Path(root)
    marker = _marker(layout, spec)
    marker_path = root / _MARKER
    if marker_path.is_file():
        try:
            if json.loads(marker_path.read_text()) == marker:
                return root  # same parameters: reuse
        except ValueError:
            pass
        shutil.rmtree(root)  # our own tree with other parameters: regenerate
    elif root.exists() and any(root.iterdir()):
        raise FileExistsError(f'{root} exists, is not empty and is not a shapes tree (no '
                              f'{_MARKER}); refusing to write into it')
    root.parent.mkdir(parents=True, exist_ok=True)
    # Build next to the target and rename, so that an interrupted run leaves no half tree.
    tmp = Path(tempfile.mkdtemp(prefix=f'.{root.name}.', dir=root.parent))
    try:
        writer(tmp, spec)
        (tmp / _MARKER).write_text(json.dumps(marker, sort_keys=True, indent=1) + '\n')
        if root.exists():
            root.rmdir()  # empty
        try:
            os.replace(tmp, root)
        except OSError:
            if not (marker_path.is_file() and json.loads(marker_path.read_text()) == marker):
                raise
            shutil.rmtree(tmp)  # another process wrote the same tree first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def _spec(spec: Optional[ShapesSpec], kwargs: dict) -> ShapesSpec:
    if spec is not None and kwargs:
        raise TypeError('pass either spec or keyword parameters, not both')
    return spec if spec is not None else ShapesSpec(**kwargs)


def generate_coco_shapes(root: Union[str, Path],
                         spec: Optional[ShapesSpec] = None,
                         **kwargs) -> Path:
    """Writes (or reuses) a shapes tree in COCO instance layout under ``root``.

    Args:
        root: Target folder (created; reused when its marker has the same parameters).
        spec: The parameters; alternatively pass :class:`ShapesSpec` fields as keywords.

    Returns:
        ``root`` as a :class:`~pathlib.Path`.
    """
    return _generate(root, 'coco', _spec(spec, kwargs), _write_coco)


def generate_ade20k_shapes(root: Union[str, Path],
                           spec: Optional[ShapesSpec] = None,
                           **kwargs) -> Path:
    """Writes (or reuses) a shapes tree in ADE20K layout under ``root``.

    Args:
        root: Target folder (created; reused when its marker has the same parameters).
        spec: The parameters; alternatively pass :class:`ShapesSpec` fields as keywords.

    Returns:
        ``root`` as a :class:`~pathlib.Path`.
    """
    return _generate(root, 'ade20k', _spec(spec, kwargs), _write_ade20k)


def generate_shapes(root: Union[str, Path],
                    layouts: Sequence[str] = ('coco', 'ade20k'),
                    spec: Optional[ShapesSpec] = None,
                    **kwargs) -> Dict[str, Path]:
    """Writes the same scenes in several layouts: ``root/coco`` and ``root/ade20k``.

    Args:
        root: Parent folder.
        layouts: Any of ``'coco'`` and ``'ade20k'``.
        spec: The parameters; alternatively pass :class:`ShapesSpec` fields as keywords.

    Returns:
        A dict from layout name to its folder.
    """
    spec = _spec(spec, kwargs)
    writers = {'coco': generate_coco_shapes, 'ade20k': generate_ade20k_shapes}
    unknown = [name for name in layouts if name not in writers]
    if unknown:
        raise ValueError(f'unknown layout(s) {unknown}; choose from {sorted(writers)}')
    return {name: writers[name](Path(root) / name, spec) for name in layouts}
