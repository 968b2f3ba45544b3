"""Compiled inference with the weights frozen into the graph."""
from typing import Any, Callable

import torch
import torch.nn as nn


def compile_frozen(module: nn.Module, **compile_kwargs: Any) -> Callable[..., Any]:
    """``torch.compile(module, **compile_kwargs)`` for inference with inductor's ``freezing``
    in effect: the returned callable runs every call (the first, which compiles, and each new
    size, which may) under ``torch.no_grad()`` with inductor's ``freezing`` config on, so that
    the weights become constants of the graph (BatchNorms fold, convolution weights are packed
    for oneDNN once). Load the weights before the first call. Give it the plain model (not one
    from ``mmhybrid.optimize_for_inference``, whose CPU fast paths are eager code).

    ``torch.compile(module, options=dict(freezing=True))`` does not do this with torch 2.13:
    dynamo decides whether parameters are graph inputs by the global config before inductor's
    options apply, so the graph keeps them as inputs and nothing is folded or packed
    (pytorch/pytorch#139272 describes the mechanism). Whether compiling pays depends on the
    family, the input size and the machine: docs/benchmarks.md has the measurements.

    Args:
        module: The plain module to compile, with its weights loaded.
        **compile_kwargs: Passed to ``torch.compile`` (e.g. ``dynamic=True``).

    Returns:
        A callable that runs the compiled module; the compiled module itself is its
        ``compiled`` attribute.

    Raises:
        TypeError: ``module`` holds a backbone optimised for eager inference.
    """
    from mmhybrid.accel.internals import inductor_freezing
    if any(getattr(m, 'optimized', False) for m in module.modules()):
        raise TypeError('compile_frozen takes the plain model: this one was optimised for '
                        'eager inference (mmhybrid.optimize_for_inference); compile a model '
                        'built without it (switch_to_deploy() may fold it first)')
    compiled = torch.compile(module, **compile_kwargs)

    def run(*args: Any, **kwargs: Any) -> Any:
        with torch.no_grad(), inductor_freezing():
            return compiled(*args, **kwargs)

    run.compiled = compiled
    return run
