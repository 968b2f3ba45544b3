"""Synthetic data for the demo and the end-to-end tests (numpy + OpenCV only)."""
from .shapes import (SEG_CLASSES, SEG_PALETTE, SHAPE_CLASSES, SHAPE_PALETTE, Scene, ShapesSpec,
                     generate_ade20k_shapes, generate_coco_shapes, generate_shapes, render_scene)

__all__ = [
    'SEG_CLASSES', 'SEG_PALETTE', 'SHAPE_CLASSES', 'SHAPE_PALETTE', 'Scene', 'ShapesSpec',
    'generate_ade20k_shapes', 'generate_coco_shapes', 'generate_shapes', 'render_scene'
]
