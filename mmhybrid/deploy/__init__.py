"""Deployment: ONNX export of whole segmenters and detectors, onnxruntime inference and the
numpy post-processing of detectors (``pip install -e .[deploy]`` for onnx/onnxruntime)."""
from .export import (ExportError, ExportFailedError, ExportResult, export_onnx, head_file,
                     read_metadata)
from .graphs import (DenseHeadGraph, RoIHeadGraph, SegmenterGraph, TwoStageGraph, graph_kind)

__all__ = [
    'DenseHeadGraph', 'ExportError', 'ExportFailedError', 'ExportResult', 'RoIHeadGraph',
    'SegmenterGraph', 'TwoStageGraph', 'export_onnx', 'graph_kind', 'head_file', 'read_metadata'
]
