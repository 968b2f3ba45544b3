"""Makes the CrossFormer++ parity files by running the authors' unmodified code (not run by tests).

    python3 -m venv /tmp/venv-cfpp
    /tmp/venv-cfpp/bin/pip install --no-deps timm==0.4.12
    echo <site-packages of a torch 2.13 environment> \
        > /tmp/venv-cfpp/lib/python3.11/site-packages/zz_torch.pth   # torch + numpy, CPU
    /tmp/venv-cfpp/bin/python tests/data/parity/make_crossformerpp.py \
        --mirror <git dir of cheerss/CrossFormer> --out /tmp/cfpp_parity
    python tests/data/parity/extract.py /tmp/cfpp_parity    # -> tests/data/parity/*.pth

The authors' files are read from the repository at ``COMMIT`` (``git show``), written to a
temporary folder unchanged (sha256 recorded) and imported from there:

- ``models/crossformer.py`` (ImageNet classification, ``configs/crossformer_pp/*.yaml``);
- ``models/crossformer_backbone_det.py`` (the dense backbone of ``detection/``; the ``_seg``
  file differs only in its logger import and comments).

Their imports that cannot be satisfied here get in-memory stand-ins, none on a numerical path:
timm's package ``__init__`` needs torchvision, which has no build for this CPU torch, so
``timm.models.layers`` is assembled from the installed timm's own ``drop.py``, ``helpers.py``
and ``weight_init.py`` (``DropPath`` is the identity in eval mode; the initialisers are
overwritten by the parity weights); the dense file's mmcv 1.x / mmdet 2.x imports (logger,
``BaseModule``, init helpers, never called on the forward path) are placeholders.

Weights and inputs follow tests/parity_rule.py (tests/data/parity/README.md). References are the
float64 results (weights and inputs up-cast exactly) rounded to float32; the float32 run of the
same code gives the tolerances.
"""
import argparse
import hashlib
import importlib.util
import logging
import math
import platform
import subprocess
import sys
import tempfile
import types
from collections import OrderedDict
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/, for parity_rule

import parity_rule  # noqa: E402

REPO = 'cheerss/CrossFormer'
COMMIT = '795201075f0066e78408882617312084e25aef61'  # branch main
CLS_FILE = 'models/crossformer.py'
DET_FILE = 'models/crossformer_backbone_det.py'
NAME = 'crossformerpp_small_reduced'

# CrossFormer++-S (configs/crossformer_pp/small_patch4_group_const_224.yaml: embed 64, depths
# 2,2,18,2, heads 2,4,8,16, groups 4,4,14,7, intervals 4,2,1,1, ACL) reduced to embed 32 (dims
# 32..256, head_dim 16) and depths 2,3,4,2: stage 3 keeps an ACL (block 2), stage 2 has a third
# block that is the stage's last and therefore gets none.
REDUCED = dict(embed_dim=32, depths=[2, 3, 4, 2], num_heads=[2, 4, 8, 16])
COMMON = dict(patch_size=[4, 8, 16, 32], in_chans=3, num_classes=1000, qkv_bias=True,
              qk_scale=None, drop_rate=0.0, patch_norm=True, use_checkpoint=False,
              merge_size=[[2, 4], [2, 4], [2, 4]], use_acl=True, **REDUCED)
# build.py with config.py's defaults and the yaml: mlp ratios per stage, constant group type.
CLS_KWARGS = dict(img_size=224, group_size=[4, 4, 14, 7], crs_interval=[4, 2, 1, 1],
                  mlp_ratio=[4., 4., 4., 4.], drop_path_rate=0.2, ape=False,
                  group_type='constant', use_cpe=False, pad_type=0, no_mask=False,
                  adaptive_interval=False, **COMMON)


def dense_kwargs(group_size, crs_interval):
    # detection/crossformer_factory.py CrossFormer_S2 with the reduced dims.
    return dict(img_size=[1280, 800], group_size=group_size, crs_interval=crs_interval,
                mlp_ratio=4, drop_path_rate=0.2, adaptive_interval=False, init_cfg=None,
                **COMMON)


DENSE_CASES = {
    # The official dense configs (detection/configs/crossformer_pp/*, segmentation/...): group
    # 7, intervals 8,4,2,1. A 230x302 image padded to 256x320 as mmdet feeds it: every stage
    # pads and masks (64x80: LDA regions of 56 -> 112x112; ... 8x10 with G = 7).
    'det': dict(kwargs=dense_kwargs([7, 7, 7, 7], [8, 4, 2, 1]), shape=(2, 3, 230, 302),
                tag='det_inputs', pad=(0, 18, 0, 26),
                note='dense config groups 7,7,7,7 and intervals 8,4,2,1 '
                     '(detection/configs/crossformer_pp/mask_rcnn_crossformerpp_s_fpn_1x_coco.py)'),
    # The ImageNet groups on a 224x320 input: stage 1 (56x80) and 2 (28x40) pad their LDA
    # regions (16, 8), stage 3 (14x20) and 4 (7x10) take the small-map branch (min <= G): one
    # SDA group of max(H, W) = 20 / 10, padded and masked.
    '224x320': dict(kwargs=dense_kwargs([4, 4, 14, 7], [4, 2, 1, 1]), shape=(2, 3, 224, 320),
                    tag='inputs_224x320', pad=None,
                    note='ImageNet groups 4,4,14,7 and intervals 4,2,1,1 '
                         '(configs/crossformer_pp/small_patch4_group_const_224.yaml)'),
}


def git_show(mirror: Path, path: str) -> bytes:
    return subprocess.run(['git', '--git-dir', str(mirror), 'show', f'{COMMIT}:{path}'],
                          check=True, capture_output=True).stdout


def file_commit(mirror: Path, path: str) -> str:
    return subprocess.run(['git', '--git-dir', str(mirror), 'log', '-1', '--format=%H', COMMIT,
                           '--', path], check=True, capture_output=True, text=True).stdout.strip()


def module(name: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    sys.modules[name] = mod
    return mod


def install_stand_ins() -> str:
    """timm.models.layers from timm's own files; mmcv 1.x / mmdet 2.x placeholders."""
    spec = importlib.util.find_spec('timm')
    timm_dir = Path(spec.submodule_search_locations[0])
    version = (timm_dir / 'version.py').read_text().split("'")[1]
    layers = module('timm.models.layers')
    for part in ('helpers', 'drop', 'weight_init'):
        path = timm_dir / 'models' / 'layers' / f'{part}.py'
        exec(compile(path.read_text(), str(path), 'exec'), layers.__dict__)  # noqa: S102
    module('timm', models=module('timm.models', layers=layers))

    def unused(*args, **kwargs):
        raise RuntimeError('stand-in of an mmcv 1.x helper: not on the forward path')

    module('mmdet', utils=module('mmdet.utils',
                                 get_root_logger=lambda: logging.getLogger('crossformerpp')))
    module('mmcv.runner', load_checkpoint=unused, BaseModule=torch.nn.Module,
           ModuleList=torch.nn.ModuleList, _load_checkpoint=unused)
    module('mmcv.cnn.bricks.transformer', FFN=unused, build_dropout=unused)
    module('mmcv.cnn.utils.weight_init', trunc_normal_=unused)
    module('mmcv.cnn', build_norm_layer=unused, constant_init=unused, trunc_normal_init=unused)
    module('mmcv')
    return version


def import_file(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def cast_dpb_inputs(model: torch.nn.Module) -> None:
    """The dense code builds the DPB offsets with ``.float()`` inside forward: cast them to the
    weights' dtype for the float64 run (exact: small integers)."""
    for m in model.modules():
        if type(m).__name__ == 'DynamicPosBias':
            m.register_forward_pre_hook(
                lambda mod, args: (args[0].to(mod.pos_proj.weight.dtype), ))


def run_classifier(cls_mod, state_dict, inputs, dtype):
    model = cls_mod.CrossFormer(**CLS_KWARGS)
    model.load_state_dict(state_dict, strict=True)
    model = model.to(dtype).eval()
    feats = {}
    for i, layer in enumerate(model.layers):
        layer.blocks[-1].register_forward_hook(
            lambda m, a, out, i=i: feats.__setitem__(i, out))
    with torch.no_grad():
        logits = model(inputs.to(dtype))
    stages = []
    for i in range(4):
        tokens = feats[i]
        size = 56 // 2**i
        stages.append(tokens.reshape(tokens.shape[0], size, size, -1).permute(0, 3, 1, 2))
    return stages, logits


def run_dense(det_mod, state_dict, kwargs, inputs, dtype):
    model = det_mod.CrossFormer(**kwargs)  # a fresh model: its blocks keep state per call
    result = model.load_state_dict(state_dict, strict=False)
    cast_dpb_inputs(model)
    model = model.to(dtype).eval()
    with torch.no_grad():
        outs = model(inputs.to(dtype))
    return list(outs), result


def error_stats(ref64, out32):
    ref = ref64.float()
    err = (out32 - ref64).abs().max().item()
    rel = ((out32.double() - ref64).abs() / (ref64.abs() + 1)).max().item()
    return dict(shape=list(ref.shape), std=round(ref.std().item(), 6),
                max_abs=round(ref.abs().max().item(), 6), fp32_max_abs_err=float(f'{err:.4g}'),
                fp32_max_rel_err=float(f'{rel:.4g}'),
                ref_rounding_max_abs_err=float(f'{(ref.double() - ref64).abs().max().item():.4g}'))


def tolerance(worst: float) -> float:
    """10x the worst float32 error, rounded up to one significant digit, at least 1e-5."""
    value = 10 * worst
    scale = 10**math.floor(math.log10(value))
    return max(1e-5, math.ceil(value / scale) * scale)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--mirror', type=Path, required=True,
                        help='git dir of a clone of cheerss/CrossFormer')
    parser.add_argument('--out', type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    timm_version = install_stand_ins()
    tmp = Path(tempfile.mkdtemp(prefix='crossformerpp-official-'))
    files = {}
    for path in (CLS_FILE, DET_FILE):
        data = git_show(args.mirror, path)
        (tmp / Path(path).name).write_bytes(data)
        files[path] = dict(official_file=f'{REPO}:{path} (ref main)',
                           official_file_sha256=hashlib.sha256(data).hexdigest(),
                           official_commit=file_commit(args.mirror, path),
                           official_mirror_head=COMMIT)
    cls_mod = import_file('crossformer_pp_cls', tmp / Path(CLS_FILE).name)
    det_mod = import_file('crossformer_pp_det', tmp / Path(DET_FILE).name)

    # The checkpoint as main.py saves it: {'model': model.state_dict()}; the main-branch code
    # registers its geometry buffers (biases, relative_position_index, attn_mask) as
    # non-persistent, so only parameters are saved.
    template = cls_mod.CrossFormer(**CLS_KWARGS).state_dict()
    state_dict = OrderedDict()
    for key, value in template.items():
        filled = parity_rule.fill(key, value.shape, value.dtype) \
            if value.is_floating_point() else None
        state_dict[key] = value.clone() if filled is None else filled
    fingerprint = parity_rule.checkpoint_fingerprint(state_dict)
    environment = dict(torch=str(torch.__version__), python=platform.python_version(),
                       timm=timm_version,
                       note='references computed on CPU in float64 and rounded to float32')

    cases = {}
    inputs = parity_rule.make_input((2, 3, 224, 224), f'{NAME}/inputs')
    stages64, logits64 = run_classifier(cls_mod, state_dict, inputs, torch.float64)
    stages32, logits32 = run_classifier(cls_mod, state_dict, inputs, torch.float32)
    stats = {f'stage{i + 1}': error_stats(r, o) for i, (r, o) in enumerate(zip(stages64,
                                                                              stages32))}
    stats['logits'] = error_stats(logits64, logits32)
    cases[NAME] = dict(
        meta=dict(
            model='CrossFormer++', case=NAME, **files[CLS_FILE], constructor='CrossFormer',
            constructor_kwargs=CLS_KWARGS,
            reduced_from_official='CrossFormer++-S layout (configs/crossformer_pp/'
            'small_patch4_group_const_224.yaml: patch sizes 4/8/16/32, merge sizes 2/4, groups '
            '4,4,14,7, intervals 4,2,1,1, heads 2/4/8/16, mlp 4, qkv_bias, use_acl) with '
            'embed_dim 32 instead of 64 (dims 32..256, head_dim 16 instead of 32) and depths '
            '2,3,4,2 instead of 2,2,18,2: stage 3 keeps an activation cooling layer (block 2 of '
            '4), stage 2 has a block 2 that is its last and so has none.',
            checkpoint_format="{'model': state_dict} -- main.py/utils.py save_checkpoint saves "
            "{'model': model.state_dict(), 'optimizer', 'lr_scheduler', 'max_accuracy', "
            "'epoch', 'config'} and load_checkpoint reads checkpoint['model']. The main-branch "
            'code registers biases / relative_position_index / attn_mask non-persistent: the '
            'state dict holds parameters only. The released CrossFormer++ files could not be '
            'downloaded here (Baidu only); this is the layout the code that wrote them saves.',
            weights='tests/parity_rule.py fill(key, shape) for every tensor of the official '
            'state dict (tests/data/parity/README.md); no tensor is kept as built.',
            environment=environment,
            input=f"inputs: 2x3x224x224, fill.make_input((2,3,224,224), '{NAME}/inputs')",
            stage_definition=['output of layers[i].blocks[-1] (tokens B,H*W,C reshaped to '
                              'B,H,W,C and permuted to B,C,H,W), before the next PatchMerging; '
                              'stage 4 before the final norm'] * 4,
            logits_definition='model(inputs): head(flatten(avgpool(norm(stage-4 tokens))))',
            semantics='224: stage 1 (56x56) SDA in 4x4 groups, LDA G=4, I=4 padded to 64x64 '
            'and masked (-1e6); stage 2 (28x28) SDA 4x4, LDA G=4, I=2 padded to 32x32; stages '
            '3 (14x14 <= G=14) and 4 (7x7 <= 7): every block one global SDA group. ACL after '
            'block 2 of stage 3: x = LayerNorm(DWConv3x3(x)), no residual.',
            fp32_vs_fp64=stats, checkpoint_fingerprint=fingerprint,
            companion_files=[f'{NAME}_{c}.pth' for c in DENSE_CASES]),
        checkpoint={'model': state_dict}, inputs=inputs,
        stages=[s.float() for s in stages64], logits=logits64.float())

    for suffix, case in DENSE_CASES.items():
        shape, tag, pad = case['shape'], f"{NAME}/{case['tag']}", case['pad']
        x = parity_rule.make_input(shape, tag, pad)
        outs64, load = run_dense(det_mod, state_dict, case['kwargs'], x, torch.float64)
        outs32, _ = run_dense(det_mod, state_dict, case['kwargs'], x, torch.float32)
        description = (f"fill.make_input(({','.join(map(str, shape))}), '{tag}')")
        if pad:
            description = (f'inputs: 2x3x{x.shape[2]}x{x.shape[3]} = F.pad(x, {pad}) with x = '
                           f'{description}: the image zero-padded bottom/right to a multiple '
                           f'of 32, as mmdet feeds it; inputs[..., :{shape[2]}, :{shape[3]}] is '
                           'the raw image (the official dense code asserts even maps before '
                           'every PatchMerging and cannot run it)')
        else:
            description = f'inputs: {description}'
        cases[f'{NAME}_{suffix}'] = dict(
            meta=dict(
                model='CrossFormer++', case=f'{NAME}_{suffix}',
                checkpoint=f'use the checkpoint stored in {NAME}.pth (same weights)',
                checkpoint_fingerprint=fingerprint, **files[DET_FILE],
                constructor='CrossFormer (dense backbone), built as detection/'
                'crossformer_factory.py CrossFormer_S2 builds it, with the reduced dims',
                constructor_kwargs=case['kwargs'], settings=case['note'],
                load_from_classification_checkpoint=dict(
                    missing_keys=list(load.missing_keys),
                    unexpected_keys=list(load.unexpected_keys)),
                input=description, environment=environment,
                stage_definition=["Stage.forward's `feat`: output of the last block of the "
                                  'stage, B,C,H,W, before PatchMerging; no per-output norm'] * 4,
                fp32_vs_fp64={f'stage{i + 1}': error_stats(r, o)
                              for i, (r, o) in enumerate(zip(outs64, outs32))}),
            inputs=x, stages=[s.float() for s in outs64])

    worst = max(s['fp32_max_abs_err'] for c in cases.values()
                for s in c['meta']['fp32_vs_fp64'].values())
    tolerances = dict(observed_fp32_vs_fp64_max_abs_err=worst,
                      float32_impl=dict(atol=tolerance(worst), rtol=1e-4),
                      float64_impl=dict(atol=1e-6, rtol=1e-6),
                      how='torch.testing.assert_close(mine, ref, atol=..., rtol=...); '
                      'float32_impl: 10x the worst float32-vs-float64 difference of the official '
                      'code itself (all files of these weights), at least 1e-5')
    for name, case in cases.items():
        case['meta']['tolerances'] = tolerances
        torch.save(case, args.out / f'{name}.pth')
        print(name, {k: v['fp32_max_abs_err'] for k, v in case['meta']['fp32_vs_fp64'].items()},
              [tuple(s.shape) for s in case['stages']])
    print('tolerances', tolerances['float32_impl'])


if __name__ == '__main__':
    main()
