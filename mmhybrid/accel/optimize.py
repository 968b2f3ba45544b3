"""The two entry points: :func:`optimize_for_inference` and :func:`optimize_for_training`.

Both work in place on every mmhybrid backbone inside the module they are given (a backbone, a
detector, a segmentor, or any module holding them) and return that module. They replace plain
layers by subclasses of them (same parameters, buffers and state-dict keys: the module's class
is changed, as ``torch.nn.utils.parametrize`` does), deciding once what depends only on the
machine and the model; what depends on the input size is decided inside the swapped-in modules.

Hooks: a module whose fast form replaces the calls of its submodules (or writes into their
outputs) is left as it is when it or any of its submodules has a forward hook or forward
pre-hook at the time of the call, or when a global module hook is registered then: the hooks
run as before. Hooks registered afterwards on a submodule of a swapped module may not run, or
may see outputs that are overwritten later: register hooks before optimising.
"""
from typing import List, Optional

import torch.nn as nn
from mmengine.logging import print_log

from mmhybrid.models.backbones.base import HybridBackbone
from mmhybrid.models.backbones.cmt import LightweightMHSA
from mmhybrid.models.layers import Mlp, TokenAttention
from . import internals
from .attention import recomputed_bias_kernel
from .cmt import optimize_cmt_for_inference, optimize_cmt_for_training
from .crossformer import optimize_crossformer_for_inference, optimize_crossformer_for_training
from .layers import FastMlp
from .linear import OneDNNLinear, OneDNNTrainingLinear, onednn_linear_default
from .van import optimize_van_for_inference, optimize_van_for_training


class Swapper:
    """Changes modules' classes, leaving alone those whose hooks a swap could bypass.

    Calling it with ``(module, cls, bypass=True, **attributes)`` gives ``module`` the class
    ``cls`` (a subclass of its own, or its own) and sets ``attributes`` on it, and returns True;
    with ``bypass`` (the new forward replaces submodules' calls or writes into their outputs)
    it returns False and changes nothing when ``module`` or a submodule has a forward hook or
    pre-hook, or a global module hook exists. The names of the modules left alone are in
    ``kept``.
    """

    def __init__(self, backbone: nn.Module) -> None:
        self.names = {module: name for name, module in backbone.named_modules()}
        self.global_hooks = internals.global_module_hooks()
        self.kept: List[str] = []

    def __call__(self, module: nn.Module, cls: type, bypass: bool = True,
                 **attributes: object) -> bool:
        if bypass and (self.global_hooks
                       or any(internals.module_hooks(m) for m in module.modules())):
            self.kept.append(self.names.get(module, type(module).__name__))
            return False
        module.__class__ = cls
        for key, value in attributes.items():
            setattr(module, key, value)
        return True


def backbones_of(model: nn.Module) -> List[HybridBackbone]:
    """The mmhybrid backbones inside ``model`` (itself included); a TypeError without any."""
    if not isinstance(model, nn.Module):
        raise TypeError(f'expected a torch.nn.Module holding mmhybrid backbones, got '
                        f'{type(model).__name__}')
    backbones = [m for m in model.modules() if isinstance(m, HybridBackbone)]
    if not backbones:
        raise TypeError(f'{type(model).__name__} holds no mmhybrid backbone (CrossFormer, '
                        f'UniFormer, UniFormerLight, CMT, TransCNN, HATNet or VAN)')
    return backbones


def _resolve_onednn(onednn_linear: Optional[bool]) -> bool:
    if onednn_linear is None:
        return onednn_linear_default()
    if not isinstance(onednn_linear, bool):
        raise TypeError(f'onednn_linear must be True, False or None, got {onednn_linear!r}')
    return onednn_linear and internals.ONEDNN_LINEAR


def _report(kind: str, backbone: HybridBackbone, swapper: Swapper) -> None:
    if swapper.kept:
        print_log(f'{kind}: {type(backbone).__name__} keeps {len(swapper.kept)} module(s) as '
                  f'built because of forward hooks ({", ".join(swapper.kept[:5])}'
                  f'{", ..." if len(swapper.kept) > 5 else ""})', logger='current')


INFERENCE = {
    'cmt': optimize_cmt_for_inference,
    'crossformer': optimize_crossformer_for_inference,
    'van': optimize_van_for_inference,
}


def optimize_for_inference(model: nn.Module,
                           onednn_linear: Optional[bool] = None) -> nn.Module:
    """Makes every mmhybrid backbone in ``model`` faster for inference on the CPU, in place.

    The model is put in eval mode; each backbone is folded (``switch_to_deploy()``: BatchNorms,
    layer scales and identity taps into the layers next to them), its parameters stop
    requiring gradients, and CPU fast paths are swapped in: linear layers on oneDNN's products
    (``onednn_linear``), token MLPs with GELU applied as the first product writes, and the
    families' own (CMT: :mod:`mmhybrid.accel.cmt`, CrossFormer: :mod:`mmhybrid.accel.crossformer`,
    VAN: :mod:`mmhybrid.accel.van`). The outputs equal the plain model's up to float rounding.

    The result is inference only: run it under ``torch.no_grad()`` or ``torch.inference_mode()``;
    ``train()`` raises, and so does loading weights (load them first). Compile or export the
    plain model instead (``mmhybrid.utils.compile_frozen``, ``tools/deploy``). The modules
    compute in float32 on the CPU; other devices and dtypes run the plain computation.

    Args:
        model: A backbone, or a module holding backbones (a detector, a segmentor).
        onednn_linear: Run linear layers (and CMT's 1x1 convolutions) on oneDNN's products;
            ``None``: where they are faster than the BLAS PyTorch was built with (an x86 CPU
            with AVX-512 not made by Intel), or as the environment variable
            ``MMHYBRID_ONEDNN_LINEAR`` (``1`` or ``0``) says.

    Returns:
        ``model``.
    """
    backbones = backbones_of(model)
    onednn = _resolve_onednn(onednn_linear)
    model.eval()
    for backbone in backbones:
        if backbone.optimized:
            continue
        backbone.switch_to_deploy()
        backbone.requires_grad_(False)
        swapper = Swapper(backbone)
        family = INFERENCE.get(backbone.family)
        if family is not None:
            family(backbone, swapper, onednn)
        for module in list(backbone.modules()):
            if type(module) is Mlp:
                swapper(module, FastMlp)
        if onednn:
            for module in backbone.modules():
                if type(module) is nn.Linear:
                    swapper(module, OneDNNLinear, bypass=False)
        backbone.optimized = True
        _report('optimize_for_inference', backbone, swapper)
    return model


def optimize_for_training(model: nn.Module,
                          onednn_linear: Optional[bool] = None,
                          recomputed_attention: bool = True,
                          gelu_batchnorm: bool = True,
                          space_to_depth: bool = True,
                          phase_form: bool = True) -> nn.Module:
    """Swaps training savers into every mmhybrid backbone in ``model``, in place.

    Each saver keeps the outputs, gradients and running statistics of the plain model (up to
    float rounding) and trades nothing but code for memory or CPU speed; without this call the
    backbones train through plain autograd. Call it once, before training (the
    ``mmhybrid.OptimizeForTrainingHook`` does so from a config).

    Args:
        model: A backbone, or a module holding backbones.
        onednn_linear: Linear layers' forward and backward products in oneDNN on float32 CPU
            inputs (``None``: as for :func:`optimize_for_inference`).
        recomputed_attention: Attention with a learnable bias on the CPU (CMT, CrossFormer)
            keeps no probabilities for its backward: they are recomputed in bands of queries
            (:mod:`mmhybrid.accel.attention`).
        gelu_batchnorm: GELU followed by BatchNorm (CMT's stem and IRFFN) stores one map, not
            two (:class:`~mmhybrid.accel.layers.GeluBatchNorm2d`).
        space_to_depth: CrossFormer's first-layer kernels of 4+ strides as space-to-depth
            convolutions (a faster weight gradient on the CPU).
        phase_form: VAN's dilated depth-wise convolution in its phase form (several times
            faster on the CPU).

    Returns:
        ``model``.
    """
    backbones = backbones_of(model)
    onednn = _resolve_onednn(onednn_linear)
    for backbone in backbones:
        if backbone.optimized:
            raise RuntimeError(f'{type(backbone).__name__} was optimised for inference: '
                               f'optimise the plain model for training')
        swapper = Swapper(backbone)
        if backbone.family == 'cmt':
            optimize_cmt_for_training(backbone, swapper, gelu_batchnorm)
        elif backbone.family == 'crossformer':
            optimize_crossformer_for_training(backbone, swapper, space_to_depth)
        elif backbone.family == 'van':
            optimize_van_for_training(backbone, swapper, phase_form)
        for module in backbone.modules():
            if recomputed_attention and isinstance(module, (TokenAttention, LightweightMHSA)):
                module.kernel = recomputed_bias_kernel
            if onednn and type(module) is nn.Linear:
                swapper(module, OneDNNTrainingLinear, bypass=False)
        _report('optimize_for_training', backbone, swapper)
    return model
