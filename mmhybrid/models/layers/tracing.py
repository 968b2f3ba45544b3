"""What the layers need to know about tracing: exported and compiled graphs get forms of a few
computations that their tracers handle (each use names why)."""
import torch


def exporting() -> bool:
    """Whether the call is being traced for export (``torch.export``, ONNX's dynamo exporter)."""
    return torch.compiler.is_exporting()


def compiling() -> bool:
    """Whether the call is being traced by ``torch.compile`` (export included)."""
    return torch.compiler.is_compiling()


def traced() -> bool:
    """Whether the call is being traced by ``torch.compile`` or for export."""
    return torch.compiler.is_compiling() or torch.compiler.is_exporting()


def lowering_for_inductor() -> bool:
    """Whether the call is being traced by ``torch.compile`` for inductor (not exported): where
    torch 2.13's inductor cannot lower a form with dynamic sizes, the layers give it an
    equivalent one (a permuted or transposed view fed to a conv fails with ``ValueRangeError``
    while inductor orders its symbolic strides; see ``LayerNorm2d._normalize_channels``)."""
    return torch.compiler.is_compiling() and not torch.compiler.is_exporting()


def contiguous_for_inductor(x: torch.Tensor) -> torch.Tensor:
    """``x``, or a contiguous copy of it while inductor compiles (:func:`lowering_for_inductor`):
    a strided view of tokens fed to the next conv fails to lower with dynamic sizes."""
    return x.contiguous() if lowering_for_inductor() else x
