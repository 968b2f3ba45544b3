"""Reference tensors for UniFormer-light, made by running the authors' unmodified code.

Not run by the tests and not importable from the package: it needs the authors' files and an
environment with their dependencies (timm), which mmhybrid never depends on. See
README_uniformer_light.md next to this file for the exact commands, the commit and the file
hashes. It writes, into ``--out``, parity files in the format of the authors' other parity files
(``meta``, ``checkpoint``, ``inputs``, ``stages``, ``logits``); ``extract.py`` then keeps what the
parity rule cannot rebuild:

    python make_uniformer_light.py SRC --out DIR     # SRC: a checkout of Sense-X/UniFormer
    python extract.py DIR                            # -> tests/data/parity/<case>.pth

Weights and inputs follow the parity rule (tests/parity_rule.py): every floating tensor of the
official state dict is ``fill(key, shape)``, every input ``make_input(shape, tag)``. References
are the official model run in float64, rounded to float32.
"""
import argparse
import hashlib
import importlib.util
import math
import platform
import sys
import types
from collections import OrderedDict
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/, for parity_rule

import parity_rule  # noqa: E402

CLS_FILE = 'image_classification/models/uniformer_light.py'
DET_FILE = 'object_detection/mmdet/models/backbones/uniformer_light.py'
NAME = 'uniformer_light_xxs_reduced'
# UniFormer-XXS layout (conv stem; head_dim 28 -> 8 and 16 heads in stages 3-4; mlp 3; the
# official prune/trade-off schedule) at dims 16/32/64/128 (head_dim 8 keeps the head counts)
# and depths 1,1,3,2: stage 3 has an unpruned block, a pruned one and a pruned last block
# (which pools the scores for stage 4); both stage-4 blocks prune.
KWARGS = dict(depth=[1, 1, 3, 2], conv_stem=True,
              prune_ratio=[[], [], [1, 0.5, 0.5], [0.5, 0.5]],
              trade_off=[[], [], [1, 0.5, 0.5], [0.5, 0.5]],
              embed_dim=[16, 32, 64, 128], head_dim=8, mlp_ratio=[3, 3, 3, 3], qkv_bias=True)
REDUCED = ('UniFormer-XXS layout (conv stem: conv3x3 s2 + BN + GELU + conv3x3 s2 + BN; stages '
           '2-4 patch conv k2 s2 + LayerNorm eps 1e-5; CBlocks in stages 1-2, EvoSABlocks with a '
           'class token in 3-4; head_dim 28 -> heads 8/16 in stages 3-4; mlp_ratio 3; qkv_bias; '
           'the official prune_ratio/trade_off schedule: stage-3 block 0 at 1, every other '
           'attention block at 0.5) with dims 16/32/64/128 instead of 56/112/224/448 (head_dim 8 '
           'keeps the head counts 8/16) and depths 1,1,3,2 instead of 2,5,8,2.')
CASES = {
    # case: (input shape, tag, model)
    NAME: ((2, 3, 224, 224), 'inputs', 'cls'),
    NAME + '_det': ((2, 3, 230, 302), 'det_inputs', 'det'),
    # Stage 4 is 2x1: a pruned block keeps 1 token and leaves out 1.
    NAME + '_64x32': ((2, 3, 64, 32), 'inputs_64x32', 'det'),
}


def load_module(path: Path, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # timm's register_model looks the module up
    spec.loader.exec_module(module)
    return module


def install_dense_stand_ins() -> None:
    """In-memory stand-ins for the dense file's mmcv 1.x / mmdet 2.x imports. None is on a
    numerical path: ``load_checkpoint`` runs only with ``pretrained_path``, the logger only
    with it, and ``BACKBONES.register_module()`` only registers."""
    registry = types.SimpleNamespace(register_module=lambda *a, **k: (lambda cls: cls))
    stand_ins = {
        'mmcv_custom': dict(load_checkpoint=None),
        'mmdet': {}, 'mmdet.utils': dict(get_root_logger=None), 'mmdet.models': {},
        'mmdet.models.builder': dict(BACKBONES=registry),
    }
    for name, attrs in stand_ins.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules[name] = module


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def capture_stages(model: torch.nn.Module, kind: str, x: torch.Tensor):
    """Runs ``model`` on ``x``; returns (stages, output). Stage i is the output map of the
    last block of stage i+1 (classification) or the input of the dense code's norm{i+1}."""
    stages, hooks = [None] * 4, []
    for i in range(4):
        if kind == 'cls':
            def hook(module, args, out, i=i):
                stages[i] = (out[1] if isinstance(out, tuple) else out).detach().clone()
            hooks.append(getattr(model, f'blocks{i + 1}')[-1].register_forward_hook(hook))
        else:
            def hook(module, args, i=i):
                stages[i] = args[0].permute(0, 3, 1, 2).detach().clone()
            hooks.append(getattr(model, f'norm{i + 1}').register_forward_pre_hook(hook))
    with torch.no_grad():
        out = model(x)
    for h in hooks:
        h.remove()
    return stages, out


def tolerance(err: float) -> float:
    """10x the official float32 error, one significant digit up, never below 1e-5."""
    value = max(1e-5, 10 * err)
    exponent = math.floor(math.log10(value))
    return float(f'{math.ceil(value / 10**exponent) * 10**exponent:.1g}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', type=Path, help='checkout of Sense-X/UniFormer')
    parser.add_argument('--commit', required=True, help='commit of that checkout')
    parser.add_argument('--out', type=Path, required=True)
    args = parser.parse_args()
    cls_mod = load_module(args.src / CLS_FILE, 'official_uniformer_light')
    install_dense_stand_ins()
    det_mod = load_module(args.src / DET_FILE, 'official_uniformer_light_det')

    torch.manual_seed(0)  # only the official initialisation draws; every tensor is refilled
    cls_model = cls_mod.UniFormer_Light(num_classes=1000, **KWARGS)
    state_dict = OrderedDict()
    for key, value in cls_model.state_dict().items():
        filled = parity_rule.fill(key, value.shape, value.dtype) \
            if value.is_floating_point() else None
        state_dict[key] = value.clone() if filled is None else filled
    cls_model.load_state_dict(state_dict, strict=True)
    det_model = det_mod.UniFormer_Light(drop_path_rate=0., **KWARGS)
    loaded = det_model.load_state_dict(state_dict, strict=False)
    fingerprint = parity_rule.checkpoint_fingerprint(state_dict)
    models = dict(cls=cls_model, det=det_model)
    for model in models.values():
        model.eval()  # the dense code's train() override returns None: no chaining

    results = {}
    for case, (shape, tag, kind) in CASES.items():
        inputs = parity_rule.make_input(shape, f'{NAME}/{tag}')
        model = models[kind]
        stages64, out64 = capture_stages(model.double(), kind, inputs.double())
        stages32, out32 = capture_stages(model.float(), kind, inputs)
        outputs = dict(stages=[s.float() for s in stages64])
        pairs = [(f'stage{i + 1}', stages32[i], stages64[i]) for i in range(4)]
        if kind == 'cls':
            outputs['logits'] = out64.float()
            pairs.append(('logits', out32, out64))
        report = {}
        for label, low, high in pairs:
            report[label] = dict(
                shape=list(high.shape), std=round(high.std().item(), 6),
                max_abs=round(high.abs().max().item(), 6),
                fp32_max_abs_err=float(f'{(low.double() - high).abs().max().item():.4g}'),
                ref_rounding_max_abs_err=float(
                    f'{(high.float().double() - high).abs().max().item():.4g}'))
            assert high.std() > 1e-3 and not torch.equal(high[0], high[1]), (case, label)
        results[case] = (inputs, outputs, report, shape, tag, kind)

    worst = max(r['fp32_max_abs_err'] for v in results.values() for r in v[2].values())
    tolerances = dict(float32_impl=dict(atol=tolerance(worst), rtol=1e-4),
                      float64_impl=dict(atol=1e-6, rtol=1e-6),
                      observed_fp32_vs_fp64_max_abs_err=worst)
    common = dict(
        model='UniFormer_Light', official_commit=args.commit, official_mirror_head=args.commit,
        checkpoint_fingerprint=fingerprint, reduced_from_official=REDUCED,
        tolerances=tolerances,
        environment=dict(python=platform.python_version(), torch=str(torch.__version__),
                         note='references computed on CPU in float64 and rounded to float32'),
        weights='tests/parity_rule.py fill(key, shape) for every floating tensor of the '
                'official state dict; num_batches_tracked kept.')
    args.out.mkdir(parents=True, exist_ok=True)
    for case, (inputs, outputs, report, shape, tag, kind) in results.items():
        is_cls = kind == 'cls'
        meta = dict(common, case=case, fp32_vs_fp64=report,
                    official_file=f'Sense-X/UniFormer:{CLS_FILE if is_cls else DET_FILE}',
                    official_file_sha256=sha256(args.src / (CLS_FILE if is_cls else DET_FILE)),
                    constructor='UniFormer_Light' + ('' if is_cls else ' (mmdet backbone)'),
                    constructor_kwargs=dict(KWARGS, **(dict(num_classes=1000) if is_cls
                                                       else dict(drop_path_rate=0.))),
                    input=f"inputs: {'x'.join(map(str, shape))}, fill.make_input(("
                          f"{','.join(map(str, shape))}), '{NAME}/{tag}')")
        if is_cls:
            meta.update(
                checkpoint_format="{'model': state_dict} -- image_classification/main_light.py "
                                  "saves {'model': ..., 'model_ema': ..., ...}",
                stage_definition=[f'output map of blocks{i + 1}[-1], B,C,H,W' for i in range(4)],
                logits_definition='model(inputs) in eval mode: head(mean over H*W of norm('
                                  'stage 4)) (norm = BatchNorm2d; the class-token head is '
                                  'used in training only)',
                companion_files=[f'{c}.pth' for c in CASES if c != case])
            data = dict(meta=meta, checkpoint={'model': state_dict}, inputs=inputs, **outputs)
        else:
            meta.update(
                checkpoint='use the checkpoint stored in ' + NAME + '.pth (same weights)',
                load_from_classification_checkpoint=dict(
                    missing_keys=sorted(loaded.missing_keys),
                    unexpected_keys=sorted(loaded.unexpected_keys)),
                stage_definition=[f'input of norm{i + 1} (the per-output LayerNorm of the dense '
                                  f'backbone), permuted from B,H,W,C to B,C,H,W'
                                  for i in range(4)])
            data = dict(meta=meta, inputs=inputs, **outputs)
        path = args.out / f'{case}.pth'
        torch.save(data, path)
        err = max(r['fp32_max_abs_err'] for r in report.values())
        print(f'{path}: stages {[list(s.shape) for s in outputs["stages"]]}, '
              f'official fp32 vs fp64 max abs {err:.3g}')
    # The dense code and the classification code are the same model: same stages at 224.
    inputs = parity_rule.make_input(CASES[NAME][0], f'{NAME}/inputs').double()
    a, _ = capture_stages(models['cls'].double(), 'cls', inputs)
    b, _ = capture_stages(models['det'].double(), 'det', inputs)
    print('dense == classification stages at 224 (float64):',
          all(torch.equal(u, v) for u, v in zip(a, b)))
    print('tolerances:', tolerances)


if __name__ == '__main__':
    main()
