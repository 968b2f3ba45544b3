"""Residual additions that reuse the branch's buffer."""
import torch


def add_residual(branch: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
    """``shortcut + branch``, written into ``branch`` when that gives the same tensor.

    ``branch`` must be a fresh result the caller owns (a conv, norm or linear output, whose
    backward does not read it). The addition is done in place when both tensors have the same
    shape, dtype and strides and do not share storage: the values (addition is commutative),
    dtype and layout are those of ``shortcut + branch``, and one map-sized buffer less is live
    at the peak. Otherwise (mixed dtypes under autocast, broadcasting, different layouts) it is
    the plain out-of-place sum.
    """
    if torch.compiler.is_compiling():
        return shortcut + branch  # traced graphs: no storage to compare; the compiler plans memory
    if (branch.shape == shortcut.shape and branch.dtype == shortcut.dtype
            and branch.stride() == shortcut.stride()
            and branch.untyped_storage().data_ptr() != shortcut.untyped_storage().data_ptr()):
        return branch.add_(shortcut)
    return shortcut + branch
