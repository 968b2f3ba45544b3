"""The backbone contract shared by every mmhybrid family."""
import copy
from typing import Any, ClassVar, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from mmhybrid.registry import WEIGHT_INITIALIZERS
from ..layers import build_out_norm
from ..layers.folding import BATCH_NORMS
from ..loading import CheckpointMismatchError, compare_state_dict, summarize_keys

# The four-stage pyramid every family produces.
NUM_STAGES = 4
# ``init_cfg`` types that load weights; they are routed to mmhybrid's checked loader (registered
# as ``Pretrained`` in mmhybrid's WEIGHT_INITIALIZERS by ``mmhybrid.checkpoint``), never to
# mmengine's lenient one.
PRETRAINED_TYPES = ('Pretrained', 'mmhybrid.Pretrained')


def _load_state_dict_pre_hook(module: 'HybridBackbone', state_dict: Dict[str, torch.Tensor],
                              prefix: str, local_metadata: Dict[str, Any], strict: bool,
                              missing_keys: List[str], unexpected_keys: List[str],
                              error_msgs: List[str]) -> None:
    """Runs before torch loads the backbone's weights (``load_state_dict``, mmengine's
    ``load_from`` and resume): adapts shapes (:meth:`HybridBackbone.adapt_state_dict`) and
    refuses weights that do not fit completely, whatever ``strict`` says."""
    own = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    module._received_weights = bool(own)
    if not own:
        return
    if module.deployed:
        raise RuntimeError(
            f'{type(module).__name__}(arch={module.arch_name!r}) was switched to deploy (its '
            f'norms are folded into its convs): load weights before switch_to_deploy(), not '
            f'after')
    for key in module.adapt_state_dict(own):
        state_dict[prefix + key] = own[key]
    comparison = compare_state_dict(own, module)
    if not comparison.fits:
        raise CheckpointMismatchError(
            f'checkpoint does not fit {type(module).__name__}(arch={module.arch_name!r})'
            f'{f" at {prefix!r}" if prefix else ""}: {comparison.problems()}. The authors\' '
            f'files load through init_cfg=dict(type=\'Pretrained\', checkpoint=...) or '
            f'tools/convert_checkpoint.py.')


def _load_state_dict_post_hook(module: 'HybridBackbone', incompatible_keys: Any) -> None:
    """A load that gave the backbone nothing while keys of the file found no place (e.g. a
    plain backbone state dict given to mmengine's ``load_from``) is an error, not a warning."""
    unexpected = incompatible_keys.unexpected_keys
    if getattr(module, '_received_weights', True) or not unexpected:
        return
    own = set(module.state_dict())
    plain = [k for k in unexpected if k in own]
    hint = (' They are this backbone\'s own keys without the prefix of the model it is part of '
            '(a file from tools/convert_checkpoint.py?): load it with init_cfg='
            'dict(type=\'Pretrained\', checkpoint=...) on the backbone instead.' if plain else '')
    raise CheckpointMismatchError(
        f'the checkpoint gave {type(module).__name__}(arch={module.arch_name!r}) no weights and '
        f'{len(unexpected)} of its keys fit nowhere: {summarize_keys(unexpected)}.{hint}')


class HybridBackbone(BaseModule):
    """Base class implementing the mmhybrid backbone contract once.

    A subclass declares its variants in ``arch_zoo``, calls ``super().__init__`` first, builds
    ``self.stem`` (a module or ``None``) and ``self.stages`` (an ``nn.ModuleList`` of
    ``NUM_STAGES`` modules, each mapping an NCHW map to the next NCHW map, downsampling
    included), then calls :meth:`_finish_build` with the channels of the four stage outputs.

    Args:
        arch: A name from the class's ``arch_zoo`` (or ``arch_aliases``), or a dict with at
            least the keys of ``arch_keys``.
        out_indices: Stages whose outputs are returned; negative values count from the end.
        frozen_stages: ``-1`` freezes nothing; ``k >= 0`` freezes the stem and stages ``0..k``
            (parameters stop receiving gradients, norm layers stay in eval mode).
        norm_eval: Keep every BatchNorm in eval mode during training (frozen statistics).
        with_cp: Activation checkpointing: ``True`` for every stage, or a sequence of the stage
            indices to checkpoint. Outputs and gradients are unchanged; memory is traded for
            compute.
        drop_path_rate: Stochastic depth rate of the last block; it rises linearly from 0 over
            all blocks.
        out_norm_cfg: A norm config (``dict(type='LN', eps=1e-6)``, ``dict(type='BN')``, ...)
            for a newly initialised norm on each returned output, or ``None`` for raw outputs.
        channels_last: Run the stages on a channels-last (NHWC-strided) copy of the input, which
            makes PyTorch's CPU convolutions (depthwise ones above all) several times faster.
            ``None`` (default): on the CPU for the families measured faster that way
            (``default_channels_last``), otherwise not. The layout changes no result beyond
            float rounding, and the returned maps are always contiguous NCHW.
        init_cfg: mmengine initialisation config. ``dict(type='Pretrained', checkpoint=PATH)``
            accepts the authors' released ImageNet file directly (converted in memory).
    """

    arch_zoo: ClassVar[Dict[str, Dict[str, Any]]] = {}
    arch_aliases: ClassVar[Dict[str, str]] = {}
    # Keys a custom ``arch`` dict must define, and optional keys with their defaults.
    arch_keys: ClassVar[Tuple[str, ...]] = ()
    arch_defaults: ClassVar[Dict[str, Any]] = {}
    # Name of the checkpoint converter family (see ``mmhybrid.checkpoint``).
    family: ClassVar[str] = ''
    in_channels: int = 3
    # Whether ``channels_last=None`` means channels-last on the CPU (see docs/benchmarks.md).
    default_channels_last: ClassVar[bool] = False

    def __init__(self,
                 arch: Union[str, Dict[str, Any]],
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: Union[bool, Sequence[int]] = False,
                 drop_path_rate: float = 0.,
                 out_norm_cfg: Optional[Dict[str, Any]] = None,
                 channels_last: Optional[bool] = None,
                 init_cfg: Optional[Union[Dict[str, Any], List[Dict[str, Any]]]] = None
                 ) -> None:
        super().__init__(init_cfg=copy.deepcopy(init_cfg))
        self.arch_name, self.arch_settings = self.parse_arch(arch)
        self.out_indices = self._parse_out_indices(out_indices)
        self.frozen_stages = self._parse_frozen_stages(frozen_stages)
        self.norm_eval = bool(norm_eval)
        self.cp_stages = self._parse_with_cp(with_cp)
        if isinstance(drop_path_rate, bool) or not isinstance(drop_path_rate, (int, float)) \
                or not 0. <= drop_path_rate < 1.:
            raise ValueError(f'drop_path_rate must be a number in [0, 1), got {drop_path_rate!r}')
        self.drop_path_rate = float(drop_path_rate)
        self.out_norm_cfg = copy.deepcopy(out_norm_cfg)
        if channels_last is not None and not isinstance(channels_last, bool):
            raise TypeError(f'channels_last must be True, False or None, got {channels_last!r}')
        self.channels_last = channels_last
        self.stem: Optional[nn.Module] = None
        self.stages = nn.ModuleList()
        self.register_load_state_dict_pre_hook(_load_state_dict_pre_hook)
        self.register_load_state_dict_post_hook(_load_state_dict_post_hook)

    # ------------------------------------------------------------------ argument parsing
    @classmethod
    def parse_arch(cls, arch: Union[str, Dict[str, Any]]) -> Tuple[str, Dict[str, Any]]:
        """Returns ``(name, settings)`` for an arch name or a custom arch dict."""
        if isinstance(arch, str):
            key = arch.lower()
            key = cls.arch_aliases.get(key, key)
            if key not in cls.arch_zoo:
                names = sorted(cls.arch_zoo) + sorted(cls.arch_aliases)
                raise ValueError(f'Unknown {cls.__name__} arch {arch!r}; choose one of '
                                 f'{names} or pass a dict with keys {list(cls.arch_keys)}.')
            settings = {**copy.deepcopy(cls.arch_defaults), **copy.deepcopy(cls.arch_zoo[key])}
            return key, settings
        if isinstance(arch, dict):
            missing = [k for k in cls.arch_keys if k not in arch]
            if missing:
                raise ValueError(f'Custom {cls.__name__} arch is missing keys {missing}; '
                                 f'required: {list(cls.arch_keys)}, optional: '
                                 f'{sorted(cls.arch_defaults)}.')
            known = set(cls.arch_keys) | set(cls.arch_defaults)
            unknown = sorted(k for k in arch if k not in known)
            if unknown:
                raise ValueError(f'Custom {cls.__name__} arch has unknown keys {unknown}; '
                                 f'known keys: {sorted(known)}.')
            settings = {**copy.deepcopy(cls.arch_defaults), **copy.deepcopy(dict(arch))}
            cls.validate_arch(settings)
            return 'custom', settings
        raise TypeError(f'{cls.__name__} arch must be a str or a dict, got {type(arch).__name__}')

    @classmethod
    def validate_arch(cls, settings: Dict[str, Any]) -> None:
        """Checks a custom arch: every list-valued setting has one entry per stage."""
        for key, value in settings.items():
            if isinstance(value, (list, tuple)) and len(value) != NUM_STAGES:
                raise ValueError(f'{cls.__name__} arch[{key!r}] must have {NUM_STAGES} '
                                 f'entries (one per stage), got {list(value)}')

    @staticmethod
    def _parse_out_indices(out_indices: Union[int, Sequence[int]]) -> Tuple[int, ...]:
        if isinstance(out_indices, int):
            out_indices = (out_indices, )
        if not isinstance(out_indices, Sequence) or not out_indices:
            raise ValueError(f'out_indices must be a non-empty sequence of stage indices, '
                             f'got {out_indices!r}')
        result = []
        for index in out_indices:
            if isinstance(index, bool) or not isinstance(index, int) \
                    or not -NUM_STAGES <= index < NUM_STAGES:
                raise ValueError(f'out_indices entry {index!r} is not a stage index: use '
                                 f'0..{NUM_STAGES - 1} or -{NUM_STAGES}..-1')
            result.append(index % NUM_STAGES)
        if len(set(result)) != len(result):
            raise ValueError(f'out_indices {list(out_indices)} name a stage twice')
        return tuple(sorted(result))

    @staticmethod
    def _parse_frozen_stages(frozen_stages: int) -> int:
        if isinstance(frozen_stages, bool) or not isinstance(frozen_stages, int) \
                or not -1 <= frozen_stages < NUM_STAGES:
            raise ValueError(f'frozen_stages must be -1 (none) or a stage index '
                             f'0..{NUM_STAGES - 1}, got {frozen_stages!r}')
        return frozen_stages

    @staticmethod
    def _parse_with_cp(with_cp: Union[bool, Sequence[int]]) -> Tuple[bool, ...]:
        if isinstance(with_cp, bool):
            return (with_cp, ) * NUM_STAGES
        if isinstance(with_cp, Sequence) and all(
                isinstance(i, int) and not isinstance(i, bool) and 0 <= i < NUM_STAGES
                for i in with_cp):
            return tuple(i in with_cp for i in range(NUM_STAGES))
        raise ValueError(f'with_cp must be a bool or a sequence of stage indices '
                         f'0..{NUM_STAGES - 1}, got {with_cp!r}')

    def drop_path_rates(self, depths: Sequence[int]) -> List[List[float]]:
        """Per-stage drop-path rates, rising linearly from 0 to ``drop_path_rate``."""
        total = sum(depths)
        step = self.drop_path_rate / (total - 1) if total > 1 else 0.
        rates = [i * step for i in range(total)]
        result, start = [], 0
        for depth in depths:
            result.append(rates[start:start + depth])
            start += depth
        return result

    # ------------------------------------------------------------------ build
    def _finish_build(self, stage_channels: Sequence[int]) -> None:
        """Records the output contract, builds per-output norms and applies freezing."""
        if len(self.stages) != NUM_STAGES:
            raise RuntimeError(f'{type(self).__name__} built {len(self.stages)} stages, '
                               f'expected {NUM_STAGES}')
        self.stage_channels = tuple(int(c) for c in stage_channels)
        self.stage_strides = (4, 8, 16, 32)
        self.out_channels = tuple(self.stage_channels[i] for i in self.out_indices)
        self.out_strides = tuple(self.stage_strides[i] for i in self.out_indices)
        if self.out_norm_cfg is not None:
            self.out_norms = nn.ModuleDict({
                str(i): build_out_norm(self.out_norm_cfg, self.stage_channels[i])
                for i in self.out_indices
            })
        else:
            self.out_norms = None
        self._freeze_stages()

    # ------------------------------------------------------------------ forward
    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f'{type(self).__name__} expects a tensor, got {type(x).__name__}')
        if x.dim() != 4:
            raise ValueError(f'{type(self).__name__} expects a 4-D NCHW image batch, got a '
                             f'{x.dim()}-D tensor of shape {tuple(x.shape)}')
        if x.shape[1] != self.in_channels:
            raise ValueError(f'{type(self).__name__} expects {self.in_channels} input '
                             f'channels, got shape {tuple(x.shape)} (is the batch NCHW?)')
        if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
            raise ValueError(f'{type(self).__name__} got an empty batch or image: shape '
                             f'{tuple(x.shape)}')
        if not x.is_floating_point():
            raise TypeError(f'{type(self).__name__} expects a floating point image, got '
                            f'{x.dtype}')

    def uses_channels_last(self, x: torch.Tensor) -> bool:
        """Whether the stages run channels-last for this input (see ``channels_last``)."""
        if self.channels_last is not None:
            return self.channels_last
        return self.default_channels_last and x.device.type == 'cpu'

    def _enter(self, x: torch.Tensor) -> torch.Tensor:
        """Checks the input and prepares it for the first stage (memory layout, stem)."""
        self._check_input(x)
        if self.uses_channels_last(x):
            x = x.contiguous(memory_format=torch.channels_last)
        return self.stem(x) if self.stem is not None else x

    def _run_stages(self, x: torch.Tensor, last: int) -> Iterator[torch.Tensor]:
        """Checks the input, then yields the raw output of stages ``0..last`` in turn.

        Families whose stages pass more than the map along (UniFormer-light's class token)
        override this and start from :meth:`_enter`."""
        x = self._enter(x)
        for stage in self.stages[:last + 1]:
            x = stage(x)
            yield x

    def stage_outputs(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Raw outputs of all four stages (no per-output norms), e.g. for parity checks."""
        return tuple(out.contiguous() for out in self._run_stages(x, NUM_STAGES - 1))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Returns the NCHW maps of ``out_indices`` (strides ``out_strides``), contiguous: some
        necks' and heads' ops (mmcv's RoIAlign among them) index raw NCHW memory."""
        outs = []
        for i, out in enumerate(self._run_stages(x, self.out_indices[-1])):
            if i in self.out_indices:
                out = self.out_norms[str(i)](out) if self.out_norms is not None else out
                outs.append(out.contiguous())
        return tuple(outs)

    # ------------------------------------------------------------------ train / freeze
    def _frozen_modules(self) -> List[nn.Module]:
        if self.frozen_stages < 0:
            return []
        modules = [self.stem] if self.stem is not None else []
        modules += list(self.stages[:self.frozen_stages + 1])
        if self.out_norms is not None:
            modules += [m for k, m in self.out_norms.items() if int(k) <= self.frozen_stages]
        return modules

    def _freeze_stages(self) -> None:
        for module in self._frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'HybridBackbone':
        if mode and self.optimized:
            raise RuntimeError(
                f'{type(self).__name__}(arch={self.arch_name!r}) was optimised for inference '
                f'(mmhybrid.optimize_for_inference): it only predicts; train a model that was '
                f'not')
        if mode and self.deployed:
            raise RuntimeError(
                f'{type(self).__name__}(arch={self.arch_name!r}) was switched to deploy '
                f'(inference only: its BatchNorms are folded away); train a model that was '
                f'not')
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, BATCH_NORMS):
                    module.eval()
        return self

    # ------------------------------------------------------------------ deploy
    # Whether switch_to_deploy() folded the backbone, and whether
    # mmhybrid.optimize_for_inference() swapped its fast modules in (inference only).
    deployed: bool = False
    optimized: bool = False

    @torch.no_grad()
    def switch_to_deploy(self) -> 'HybridBackbone':
        """Folds what inference can compute once, in place, and returns the backbone.

        Eval-mode BatchNorms next to a convolution are folded into it (where no padding or
        activation lies between them), other eval BatchNorms become their fixed per-channel
        affine map (``layers.folding.ChannelAffine``), layer scales go into the layer before
        them and residuals around a depth-wise conv become its centre tap: what inference
        would otherwise recompute from the parameters at every call is computed once here,
        and passes over the maps disappear. Which folds exist is the
        family's (each submodule's own ``switch_to_deploy``): CMT, VAN, TransCNN and UniFormer
        fold; CrossFormer (LayerNorms) and HAT-Net (GroupNorms) have nothing to fold and are
        only marked. Outputs stay those of the eval-mode model up to float rounding.

        The result is inference-only, like ``switch_to_deploy`` of mmpretrain's
        re-parameterisable backbones: it is put in eval mode, ``train()`` raises, and so does
        loading weights into it (load them first; its state dict has the folded layout).
        """
        if self.deployed:
            return self
        self.eval()
        for module in list(self.modules()):
            if module is not self and callable(getattr(module, 'switch_to_deploy', None)):
                module.switch_to_deploy()
        self.deployed = True
        return self

    # ------------------------------------------------------------------ weights
    def adapt_state_dict(self, state_dict: Dict[str, torch.Tensor]) -> List[str]:
        """Adapts the shapes of an mmhybrid-layout state dict to this model, in place.

        Called by the load hook before every load. Families whose weights depend on the
        pretrain size (CMT's position biases) resize them here; returns the resized keys.
        """
        return []

    def init_weights(self) -> None:
        """mmengine initialisation, except that every ``Pretrained`` entry of ``init_cfg`` (a
        dict or a list, with or without ``prefix``) goes through mmhybrid's checked loader
        (``mmhybrid.Pretrained``): the authors' released files are converted, and anything
        short of a complete load is an error."""
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else [self.init_cfg]
        pretrained = [c for c in cfgs if isinstance(c, dict) and c.get('type') in PRETRAINED_TYPES]
        if not pretrained:
            super().init_weights()
            return
        others = [c for c in cfgs if c is not None and c not in pretrained]
        if others:
            # mmengine applies the other entries first; the weights are loaded last, as
            # mmengine orders them itself.
            self.init_cfg = others
            super().init_weights()
            self.init_cfg = cfgs
        for cfg in pretrained:
            # The scoped name: found whatever mmengine's default scope is (mmdet, mmseg, ...).
            WEIGHT_INITIALIZERS.build(dict(cfg, type='mmhybrid.Pretrained'))(self)
        self._is_init = True
