"""Speed and memory of the authors' code against mmhybrid's, same weights, same input (not run
by the tests; docs/benchmarks.md reports its results).

Each call measures one side in this process; alternate the sides in fresh processes
(benchmarks/side_by_side.sh does) so that the two see the same machine:

    # the authors' side, in a throwaway environment (see benchmarks/README.md)
    /tmp/venv-cfpp/bin/python benchmarks/side_by_side.py authors cmt-s --mirror GITDIR --work DIR
    # mmhybrid's side, in the project's environment
    python benchmarks/side_by_side.py ours cmt-s --work DIR

The authors' side imports the authors' unmodified file (``git show`` of a pinned commit,
written to ``DIR``) with the same stand-ins for its unused imports as
tests/data/parity/make_crossformerpp.py, draws weights from a fixed seed and, on its first run,
saves them and its outputs to ``DIR``. mmhybrid's side converts those weights with its own
converter, checks its outputs against the saved ones and is timed the same way. Timing: the
median of ``--repeat`` forwards after ``--warmup`` (fp32, batch 1, eval, ``no_grad``); peak =
growth of the process's peak RSS over its RSS before the first forward (the weights and the
input already in memory; the peak is reset there, /proc/self/clear_refs). ``--compile``: both
sides under ``torch.compile`` with inductor's freezing (``mmhybrid.utils.compile_frozen``; the
authors' model too: it only sets inductor's config around each call).

Both sides start from the same state of the C library's allocator (``--allocator settled``, the
default): before anything else the process allocates and frees one 31.5 MB block. glibc then
raises its mmap threshold to that size and keeps up to twice as much at the top of the heap, as
in any process that has freed a block of that size (a detection-size feature map, a loaded
checkpoint); freed maps are reused instead of being returned to the system and faulted in again
on the next forward. Without it the state depends on what each side's set-up happened to free:
mmhybrid's (the converter's state dict) raised the threshold, the authors' did not, and at 224
the authors' code paid 10-20 ms of page faults per forward that mmhybrid's did not.
``--allocator fresh`` skips it.

``--deploy`` times mmhybrid's backbone after its ``switch_to_deploy()`` (norms folded once),
``--optimize`` after ``mmhybrid.optimize_for_inference`` (folded, CPU fast paths swapped in);
without either mmhybrid's side is the plain model. Side ``both`` builds the two models in one
process (run it with the authors' interpreter, which sees the project's packages too) and
alternates their forwards one by one (with ``--deploy`` / ``--optimize``, mmhybrid's deployed /
optimised copy as one more): a machine whose speed drifts between processes, as a
shared one does, then slows both sides alike. It reports the medians, minimums and their
ratios, not peaks (one process holds both models).
"""
import argparse
import copy
import importlib.util
import json
import resource
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # mmhybrid from this checkout, whichever interpreter runs it
    sys.path.insert(0, str(REPO))

# model -> the authors' file, its commit, the mmhybrid backbone (with the authors' model's
# drop-path rate: both train alike) and its converter family; size: the CPU comparison's input
# (cmt-s: its pretrain size); gpu_size: the GPU comparison's (benchmarks/gpu_check.py).
MODELS = {
    'cmt-s': dict(file='cmt_pytorch/cmt.py', repo='huawei-noah/Efficient-AI-Backbones',
                  commit='f90e129b645c3b1684fe07cd361cd557d0ad71f7', family='cmt',
                  ours=dict(type='CMT', arch='small'), size=(224, 224), gpu_size=(800, 1344)),
    # The ICLR'22 dense backbone (branch crossformer) as its detection/crossformer_factory.py
    # builds CrossFormer_S with the Mask R-CNN config's groups 7 and intervals 8,4,2,1.
    'crossformer-s': dict(
        file='models/crossformer_backbone.py', repo='cheerss/CrossFormer',
        commit='4fbf7501d6923f2564e8cb6d08a2d0138fc24a16', family='crossformer',
        ours=dict(type='CrossFormer', arch='small', lda_mode='iclr', drop_path_rate=0.2),
        size=(800, 1344), gpu_size=(800, 1344)),
    # The main-branch dense backbone (CrossFormer++ code) with CrossFormer-S's layout, as the
    # detection/ configs of that branch build it: groups 7, intervals 8,4,2,1, no ACL.
    'crossformer-s-regional': dict(
        file='models/crossformer_backbone_det.py', repo='cheerss/CrossFormer',
        commit='795201075f0066e78408882617312084e25aef61', family='crossformer',
        ours=dict(type='CrossFormer', arch='small', lda_mode='regional', drop_path_rate=0.2),
        size=(800, 1344), gpu_size=(800, 1344)),
    # The mmdet backbone with object_detection/exp/mask_rcnn_1x_hybrid_small/config.py's
    # settings (hybrid stage 3, windows of 14, drop path 0.2; no activation checkpointing).
    'uniformer-s': dict(
        file='object_detection/mmdet/models/backbones/uniformer.py', repo='Sense-X/UniFormer',
        commit='52a0415e4e0dda880fab8ffbc710e4d8e171149d', family='uniformer',
        ours=dict(type='UniFormer', arch='small', attn_modes=('hybrid', 'global'),
                  window_size=14, drop_path_rate=0.2), size=(800, 1344), gpu_size=(800, 1344)),
    'hatnet-s': dict(file='HAT_Net.py', repo='yun-liu/TransCNN',
                     commit='4b2e7bf797d2d8d1ff1a0b11c61db4c5dd07723c', family='hatnet',
                     ours=dict(type='HATNet', arch='small'), size=(896, 1344),
                     gpu_size=(896, 1344)),
    'transcnn-s': dict(file='TransCNN.py', repo='yun-liu/TransCNN',
                       commit='0bd7463ed11177b01b5fb59946537bc8d0c635cb', family='transcnn',
                       ours=dict(type='TransCNN', arch='small'), size=(768, 1280),
                       gpu_size=(768, 1280)),
    'van-b2': dict(file='models/van.py', repo='Visual-Attention-Network/VAN-Classification',
                   commit='e19779b53a1b0828b51ecb4412d577541aee83a7', family='van',
                   ours=dict(type='VAN', arch='b2'), size=(800, 1344), gpu_size=(800, 1344)),
}


def bundled_file(bundle: Path, name: str) -> Path:
    """Where ``benchmarks/prepare_gpu_bundle.sh`` puts model ``name``'s file of the authors':
    ``authors/<owner>+<repo>/<commit>/<path>``, unmodified."""
    info = MODELS[name]
    return bundle / 'authors' / info['repo'].replace('/', '+') / info['commit'] / info['file']


def authors_source(name: str, mirror: Optional[Path] = None,
                   bundle: Optional[Path] = None) -> bytes:
    """The authors' file of model ``name``: ``git show`` of its pinned commit in ``mirror`` (a
    git dir of the repository), or the copy in a prepared ``bundle``."""
    info = MODELS[name]
    if bundle is not None:
        return bundled_file(bundle, name).read_bytes()
    if mirror is None:
        raise ValueError(f'{name}: the authors\' file needs a mirror or a bundle')
    return subprocess.run(['git', '--git-dir', str(mirror), 'show',
                           f"{info['commit']}:{info['file']}"], check=True,
                          capture_output=True).stdout


class ImageSize(tuple):
    """``(H, W)`` that divides like a number: ``ImageSize((800, 1344)) // 2 == (400, 672)``.
    The authors' CMT takes one ``img_size`` and halves it per stage (``img_size//2``) before
    timm's ``to_2tuple``; given this pair it builds its dense position biases for a non-square
    input, unmodified."""

    def __floordiv__(self, other: int) -> 'ImageSize':
        return ImageSize(v // other for v in self)


def reset_peak_rss() -> None:
    """Lowers the peak RSS to the current RSS (Linux >= 4.0), so that the transient of loading
    and converting the weights does not hide the forward's peak."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    except OSError:
        pass


def peak_rss_mb() -> float:
    """The process's peak RSS (``VmHWM``; ``ru_maxrss`` where /proc is missing), MB."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_stand_ins() -> types.ModuleType:
    """The parity script's stand-ins (timm.models.layers from timm's files, mmcv 1.x / mmdet 2.x
    placeholders), plus the timm names cmt.py imports but never calls on the forward path."""
    sys.path.insert(0, str(REPO / 'tests'))
    spec = importlib.util.spec_from_file_location(
        'make_crossformerpp', REPO / 'tests' / 'data' / 'parity' / 'make_crossformerpp.py')
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    maker.install_stand_ins()
    maker.module('timm.data', IMAGENET_DEFAULT_MEAN=(0.485, 0.456, 0.406),
                 IMAGENET_DEFAULT_STD=(0.229, 0.224, 0.225))
    maker.module('timm.models.helpers', load_pretrained=None)
    maker.module('timm.models.resnet', resnet26d=None, resnet50d=None)
    maker.module('timm.models.registry', register_model=lambda fn: fn)
    maker.module('timm.models.vision_transformer', _cfg=lambda **kwargs: dict(kwargs))
    # UniFormer's mmdet backbone: its checkpoint loader and registry (never on the forward path;
    # ``BACKBONES.register_module()`` only registers) and the package its relative import needs.
    registry = types.SimpleNamespace(register_module=lambda *a, **k: (lambda cls: cls))
    maker.module('mmcv_custom', load_checkpoint=None)
    maker.module('mmdet.models', builder=maker.module('mmdet.models.builder', BACKBONES=registry))
    maker.module('mmdet.models.backbones')
    return maker


# Top-level names the stand-ins occupy in ``sys.modules`` while an authors' model is built.
STAND_IN_ROOTS = ('mmcv', 'mmdet', 'timm', 'mmcv_custom')


class AuthorsCMTStages(torch.nn.Module):
    """The authors' ``CMT.forward_features`` up to the stage-4 tokens (no classifier convs),
    each stage's tokens reshaped to NCHW as their dense use would."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        m, batch = self.model, x.shape[0]
        x = m.stem_norm1(m.stem_relu1(m.stem_conv1(x)))
        x = m.stem_norm2(m.stem_relu2(m.stem_conv2(x)))
        x = m.stem_norm3(m.stem_relu3(m.stem_conv3(x)))
        outs = []
        for name in 'abcd':
            x, (height, width) = getattr(m, f'patch_embed_{name}')(x)
            for block in getattr(m, f'blocks_{name}'):
                x = block(x, height, width, getattr(m, f'relative_pos_{name}'))
            x = x.reshape(batch, height, width, -1).permute(0, 3, 1, 2).contiguous()
            outs.append(x)
        return outs


class AuthorsVANStages(torch.nn.Module):
    """The authors' ``VAN.forward_features`` without the final pooling: each stage's normed
    map, NCHW (the last stage's tokens reshaped as the earlier ones)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        m, batch, outs = self.model, x.shape[0], []
        for i in range(1, m.num_stages + 1):
            x, height, width = getattr(m, f'patch_embed{i}')(x)
            for block in getattr(m, f'block{i}'):
                x = block(x)
            x = getattr(m, f'norm{i}')(x.flatten(2).transpose(1, 2))
            x = x.reshape(batch, height, width, -1).permute(0, 3, 1, 2).contiguous()
            outs.append(x)
        return outs


class AuthorsHATStages(torch.nn.Module):
    """The authors' HAT-Net / TransCNN ``forward`` without the pooling and classifier: the
    output of each stage's last block (before ``ds2``/``ds3``/``ds4``), NCHW."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        m, outs = self.model, []
        x = m.patch_embed(x)
        for i, blocks in enumerate(m.blocks):
            if i:
                x = getattr(m, f'ds{i + 1}')(x)
            for block in blocks:
                x = block(x)
            outs.append(x)
        return outs


# Models whose state dict the stage wrapper prefixes with ``model.``.
WRAPPED = ('cmt-s', 'van-b2', 'hatnet-s', 'transcnn-s')


def _draw_batchnorm_statistics(model: torch.nn.Module) -> None:
    for m in model.modules():  # non-trivial BatchNorm statistics (CMT, VAN, TransCNN)
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)


def build_authors(name: str, mirror: Optional[Path], work: Path, size,
                  bundle: Optional[Path] = None) -> torch.nn.Module:
    """The authors' model ``name`` from their unmodified file (``mirror`` or ``bundle``, see
    :func:`authors_source`), weights drawn from seed 0, in eval mode.

    CMT-S at a size other than 224 is built for that size (:class:`ImageSize`), with the weights
    drawn for 224 and its dense position biases the bicubic resize of the 224 ones that mmhybrid
    computes at run time; those 224 weights, which mmhybrid loads, are in ``drawn_state_dict``."""
    info = MODELS[name]
    maker = load_stand_ins()
    local = work / Path(info['file']).name
    local.write_bytes(authors_source(name, mirror, bundle))
    module_name = f'authors_{name.replace("-", "_")}'
    if name == 'uniformer-s':  # ``from ..builder import BACKBONES``: a module of the package
        module_name = f'mmdet.models.backbones.{module_name}'
    module = maker.import_file(module_name, local)
    torch.manual_seed(0)
    drawn = None
    if name == 'cmt-s':
        model = AuthorsCMTStages(module.cmt_s(img_size=224))
        _draw_batchnorm_statistics(model)
        if tuple(size) != (224, 224):
            drawn = model.state_dict()
            model = AuthorsCMTStages(module.cmt_s(img_size=ImageSize(size)))
            model.load_state_dict(resized_cmt_biases(drawn, model), strict=True)
    elif name == 'van-b2':
        model = AuthorsVANStages(module.van_b2())
    elif name == 'hatnet-s':
        model = AuthorsHATStages(module.HAT_Net_small())
    elif name == 'transcnn-s':
        model = AuthorsHATStages(module.TransCNN_Small())
    elif name == 'uniformer-s':
        model = module.UniFormer(layers=[3, 4, 8, 3], embed_dim=[64, 128, 320, 512], head_dim=64,
                                 drop_path_rate=0.2, windows=False, hybrid=True, window_size=14)
    elif name == 'crossformer-s':
        model = module.CrossFormer(
            img_size=[1280, 800], patch_size=[4, 8, 16, 32], in_chans=3, num_classes=1000,
            embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24],
            group_size=[7, 7, 7, 7], crs_interval=[8, 4, 2, 1], mlp_ratio=4, qkv_bias=True,
            qk_scale=None, drop_rate=0.0, drop_path_rate=0.2, patch_norm=True,
            use_checkpoint=False, merge_size=[[2, 4]] * 3)
    else:
        model = module.CrossFormer(
            img_size=[1280, 800], patch_size=[4, 8, 16, 32], embed_dim=96, depths=[2, 2, 6, 2],
            num_heads=[3, 6, 12, 24], group_size=[7, 7, 7, 7], crs_interval=[8, 4, 2, 1],
            mlp_ratio=4, qkv_bias=True, drop_path_rate=0.2, merge_size=[[2, 4]] * 3,
            use_acl=False, init_cfg=None)
        for param in model.parameters():  # no init_weights in the dense file: draw them
            param.data.normal_(0, 0.02)
    if name != 'cmt-s':
        _draw_batchnorm_statistics(model)
    model.drawn_state_dict = drawn
    return model.eval()


def resized_cmt_biases(drawn: Dict[str, torch.Tensor],
                       model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """``drawn`` (CMT weights of one size) with each stage's ``relative_pos`` resized to the
    shape of ``model``'s by mmhybrid's own resize (``layers/position_bias.py`` and the
    ``layers/tracing.py`` it imports, loaded from their folder as a package of their own, not
    through ``mmhybrid``: the stand-ins for ``mmcv`` are in place while the authors' model is
    built)."""
    if 'mmhybrid_layers_alone' not in sys.modules:
        package = types.ModuleType('mmhybrid_layers_alone')
        package.__path__ = [str(REPO / 'mmhybrid' / 'models' / 'layers')]
        sys.modules['mmhybrid_layers_alone'] = package
    position_bias = importlib.import_module('mmhybrid_layers_alone.position_bias')
    state = dict(drawn)
    target = model.state_dict()
    for key, value in drawn.items():
        if '.relative_pos_' not in key or value.shape == target[key].shape:
            continue
        stage = 'abcd'.index(key[-1])
        embed = getattr(model.model, f'patch_embed_{key[-1]}')
        dst_query = tuple(embed.img_size[i] // embed.patch_size[i] for i in range(2))
        sr = (8, 4, 2, 1)[stage]
        src_side = 224 // 4 // 2**stage
        with torch.no_grad():
            state[key] = position_bias.resize_position_bias(
                value, (src_side, src_side), (src_side // sr, src_side // sr), dst_query,
                (dst_query[0] // sr, dst_query[1] // sr)).contiguous()
    return state


def build_ours(name: str, work: Path) -> torch.nn.Module:
    import mmhybrid  # noqa: F401  (registers the backbones and converters)
    from mmhybrid.checkpoint import convert_state_dict
    from mmhybrid.registry import MODELS as REGISTRY
    info = MODELS[name]
    cfg = dict(info['ours'], type=f"mmhybrid.{info['ours']['type']}", out_indices=(0, 1, 2, 3))
    model = REGISTRY.build(cfg)
    state_dict = torch.load(work / f'{name}.pth', weights_only=True)
    if name in WRAPPED:  # the stage wrapper's prefix
        state_dict = {k[len('model.'):]: v for k, v in state_dict.items()}
    converted, _ = convert_state_dict(state_dict, info['family'])
    model.load_state_dict(converted, strict=True)
    return model.eval()


def build_both(name: str, mirror: Optional[Path], work: Path, size, bundle: Optional[Path] = None,
               save_outputs: bool = True) -> Tuple[torch.nn.Module, ...]:
    """The authors' model and mmhybrid's in one process: the stand-ins the authors' file needs
    (placeholder ``mmcv`` / ``mmdet`` / ``timm`` modules) are removed again after it is built,
    so that mmhybrid imports the real packages. On a first run (no saved weights in ``work``)
    the authors' weights (and, with ``save_outputs``, their outputs) are saved, as their side
    does."""
    saved = {k: v for k, v in sys.modules.items() if k.split('.')[0] in STAND_IN_ROOTS}
    authors = build_authors(name, mirror, work, size, bundle)
    for key in [k for k in sys.modules if k.split('.')[0] in STAND_IN_ROOTS]:
        del sys.modules[key]
    sys.modules.update(saved)
    if not (work / f'{name}.pth').exists():
        torch.save(authors.drawn_state_dict or authors.state_dict(), work / f'{name}.pth')
        if save_outputs:
            x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(1))
            with torch.no_grad():
                outs = [o.contiguous() for o in authors(x)]
            torch.save(outs, work / f'{name}_{size[0]}x{size[1]}_outputs.pth')
    return authors, build_ours(name, work)


def timed_alternating(runs: Dict[str, Callable], x: torch.Tensor, warmup: int,
                      repeat: int) -> Dict[str, Dict[str, float]]:
    """Median and minimum forward time of each of ``runs``, their forwards alternating."""
    times: Dict[str, List[float]] = {key: [] for key in runs}
    with torch.no_grad():
        for _ in range(warmup):
            for run in runs.values():
                run(x)
        for _ in range(repeat):
            for key, run in runs.items():
                start = time.perf_counter()
                run(x)
                times[key].append(time.perf_counter() - start)
    return {key: dict(median_ms=1e3 * sorted(t)[len(t) // 2], min_ms=1e3 * min(t))
            for key, t in times.items()}


def settle_allocator() -> None:
    """Allocates and frees one 31.5 MB block (just under glibc's 32 MB cap on its dynamic mmap
    threshold; ``torch.empty`` touches no page of it)."""
    block = torch.empty(31_500_000 // 4)
    del block


def compile_frozen(model: torch.nn.Module) -> Callable:
    """What ``mmhybrid.utils.compile_frozen`` does, written here: the authors' side must not
    import the mmhybrid package (its stand-ins for ``mmcv`` and the rest are in place)."""
    import torch._inductor.config as inductor_config
    compiled = torch.compile(model)

    def run(*args, **kwargs):
        with torch.no_grad(), inductor_config.patch(freezing=True):
            return compiled(*args, **kwargs)

    return run


def timed(run: Callable, x: torch.Tensor, warmup: int, repeat: int) -> Dict[str, float]:
    reset_peak_rss()
    base = peak_rss_mb()
    with torch.no_grad():
        start = time.perf_counter()
        outs = run(x)
        first = time.perf_counter() - start
        del outs
        for _ in range(warmup):
            run(x)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            run(x)
            times.append(time.perf_counter() - start)
    times.sort()
    return dict(median_ms=1e3 * times[len(times) // 2], min_ms=1e3 * times[0],
                first_s=first, peak_mb=peak_rss_mb() - base)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('side', choices=['authors', 'ours', 'both'])
    parser.add_argument('model', choices=sorted(MODELS))
    parser.add_argument('--work', type=Path, required=True, help='weights, outputs, results')
    parser.add_argument('--mirror', type=Path, help='git dir of the authors\' repository')
    parser.add_argument('--size', type=int, nargs=2, help='H W (default: the model\'s)')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile with inductor freezing, both sides')
    parser.add_argument('--deploy', action='store_true',
                        help='mmhybrid\'s backbone after switch_to_deploy() (norms folded once)')
    parser.add_argument('--optimize', action='store_true',
                        help='mmhybrid\'s backbone after mmhybrid.optimize_for_inference')
    parser.add_argument('--allocator', choices=['settled', 'fresh'], default='settled',
                        help='settled: free one 31.5 MB block first (see the module docstring)')
    args = parser.parse_args()
    if args.allocator == 'settled':
        settle_allocator()
    args.work.mkdir(parents=True, exist_ok=True)
    size = tuple(args.size or MODELS[args.model]['size'])
    if args.side != 'ours' and args.mirror is None:
        parser.error(f'side {args.side} needs --mirror')
    if args.side == 'both' and args.compile:
        parser.error('side both times eager forwards')
    if args.compile and args.optimize:
        parser.error('--optimize is eager inference: compile the plain model')
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(1))
    reference = args.work / f'{args.model}_{size[0]}x{size[1]}_outputs.pth'
    result = dict(side=args.side, model=args.model, size=list(size), compile=args.compile,
                  deploy=args.deploy, optimize=args.optimize, allocator=args.allocator,
                  torch=torch.__version__,
                  threads=torch.get_num_threads())
    if args.side == 'both':
        authors, model = build_both(args.model, args.mirror, args.work, size)
        runs = dict(authors=authors, ours=model)
        if args.deploy:
            runs['ours_deployed'] = copy.deepcopy(model).switch_to_deploy()
        if args.optimize:
            import mmhybrid
            runs['ours_optimized'] = mmhybrid.optimize_for_inference(copy.deepcopy(model))
        timing = timed_alternating(runs, x, args.warmup, args.repeat)
        result.update({f'{key}_{stat}': value for key, stats in timing.items()
                       for stat, value in stats.items()})
        for key in runs:
            if key != 'authors':
                result[f'speedup_{key}'] = (timing['authors']['median_ms']
                                            / timing[key]['median_ms'])
        model = runs.get('ours_deployed', model)
    else:
        if args.side == 'authors':
            model = build_authors(args.model, args.mirror, args.work, size)
        else:
            model = build_ours(args.model, args.work)
            if args.deploy:
                model.switch_to_deploy()
            if args.optimize:
                import mmhybrid
                mmhybrid.optimize_for_inference(model)
        run = compile_frozen(model) if args.compile else model
        result.update(timed(run, x, args.warmup, args.repeat))
    with torch.no_grad():
        outs = [o.contiguous() for o in model(x)]
    if args.side == 'authors' and not reference.exists():
        torch.save(model.drawn_state_dict or model.state_dict(), args.work / f'{args.model}.pth')
        torch.save(outs, reference)
    else:
        expected = torch.load(reference, weights_only=True)
        result['max_abs_diff'] = max((o - r).abs().max().item() for o, r in zip(outs, expected))
        result['ref_max_abs'] = max(r.abs().max().item() for r in expected)
    line = json.dumps(result)
    print(line)
    with open(args.work / 'results.jsonl', 'a') as f:
        f.write(line + '\n')


if __name__ == '__main__':
    main()
