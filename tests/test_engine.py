"""Crash-safe checkpoint writes."""
import os
from pathlib import Path

import pytest
import torch
from mmengine.fileio import get_file_backend

import mmhybrid  # noqa: F401
from mmhybrid.engine import ATOMIC_BACKEND, AtomicLocalBackend, BadInputError

REPO = Path(__file__).resolve().parents[1]


def test_backend_is_registered(tmp_path):
    backend = get_file_backend(str(tmp_path / 'x.pth'), backend_args=dict(backend=ATOMIC_BACKEND))
    assert isinstance(backend, AtomicLocalBackend)


def test_put_is_atomic(tmp_path, monkeypatch):
    backend = AtomicLocalBackend()
    target = tmp_path / 'epoch_1.pth'
    backend.put(b'complete checkpoint', target)
    assert target.read_bytes() == b'complete checkpoint'

    def crash(*args, **kwargs):
        raise KeyboardInterrupt('killed while writing')

    monkeypatch.setattr(os, 'replace', crash)
    with pytest.raises(KeyboardInterrupt):
        backend.put(b'new bytes that never land', target)
    assert target.read_bytes() == b'complete checkpoint'
    assert os.listdir(tmp_path) == ['epoch_1.pth'], 'temporary file left behind'
    monkeypatch.undo()
    backend.put_text('work_dirs/x/epoch_1.pth', tmp_path / 'last_checkpoint')
    assert (tmp_path / 'last_checkpoint').read_text() == 'work_dirs/x/epoch_1.pth'


# ---------------------------------------------------------------- DeterministicResumeHook

def _draws():
    import random

    import numpy as np
    import torch
    return (random.random(), float(np.random.rand()), torch.rand(3).tolist())


def test_derived_seed_depends_only_on_seed_stream_and_index():
    from mmhybrid.engine import derived_seed
    assert derived_seed(0, 0, 5) == derived_seed(0, 0, 5)
    seeds = {derived_seed(s, stream, i) for s in (0, 1) for stream in (0, 1) for i in range(50)}
    assert len(seeds) == 200  # no collisions between seeds, streams and indices
    assert 0 <= derived_seed(-1, 0, 0) < 2**32


def test_deterministic_resume_hook_reseeds_from_iteration():
    from types import SimpleNamespace

    from mmhybrid.engine import DeterministicResumeHook
    hook = DeterministicResumeHook()
    runner = SimpleNamespace(seed=7, iter=12, epoch=3)
    hook.before_train_iter(runner, batch_idx=0)
    first = _draws()
    _draws()  # whatever the process drew in between (validation, data-loader start-up) ...
    hook.before_train_iter(runner, batch_idx=0)
    assert _draws() == first  # ... iteration 12 draws the same numbers
    runner.iter = 13
    hook.before_train_iter(runner, batch_idx=1)
    assert _draws() != first
    hook.before_train_epoch(runner)
    epoch_draws = _draws()
    hook.before_train_epoch(runner)
    assert _draws() == epoch_draws != first
    # an explicit seed wins over the runner's
    explicit = DeterministicResumeHook(seed=7)
    runner.iter = 12
    explicit.before_train_iter(SimpleNamespace(seed=None, iter=12, epoch=0), batch_idx=0)
    assert _draws() == first


def test_deterministic_resume_hook_needs_a_seed():
    from types import SimpleNamespace

    from mmhybrid.engine import DeterministicResumeHook
    with pytest.raises(RuntimeError, match='randomness.seed'):
        DeterministicResumeHook().before_train_iter(SimpleNamespace(seed=None, iter=0),
                                                    batch_idx=0)
    with pytest.raises(TypeError, match='seed'):
        DeterministicResumeHook(seed='0')


def test_deterministic_configs_get_the_hook():
    from mmengine.config import Config

    from mmhybrid.engine import use_deterministic_resume
    cfg = Config(dict(randomness=dict(seed=0, deterministic=True), custom_hooks=[]))
    use_deterministic_resume(cfg)
    assert cfg.custom_hooks == [dict(type='mmhybrid.DeterministicResumeHook')]
    use_deterministic_resume(cfg)  # not twice
    assert len(cfg.custom_hooks) == 1
    plain = Config(dict(randomness=dict(seed=0)))
    use_deterministic_resume(plain)
    assert not plain.get('custom_hooks')


# ---------------------------------------------------------------- configs of tools/train.py, test.py

CONFIG = '''
default_scope = 'mmdet'
model = dict(type='Foo')
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1))
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1),
                     visualization=dict(type='DetVisualizationHook'))
randomness = dict(seed=0, deterministic=True)
test_evaluator = dict(type='CocoMetric')
'''


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / 'tiny_cfg.py'
    path.write_text(CONFIG)
    return str(path)


def test_train_config(config_file, tmp_path):
    from mmhybrid.engine import build_train_config
    cfg = build_train_config(config_file)
    assert cfg.work_dir == './work_dirs/tiny_cfg' and cfg.launcher == 'none'
    assert cfg.default_hooks.checkpoint.backend_args == dict(backend=ATOMIC_BACKEND)
    assert cfg.custom_hooks == [dict(type='mmhybrid.DeterministicResumeHook')]
    assert 'resume' not in cfg and 'model_wrapper_cfg' not in cfg
    cfg = build_train_config(config_file, work_dir=str(tmp_path), amp=True, resume='auto',
                             cfg_options={'optim_wrapper.optimizer.lr': 0.5})
    assert cfg.work_dir == str(tmp_path) and cfg.resume is True and cfg.load_from is None
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and cfg.optim_wrapper.loss_scale == 'dynamic'
    assert cfg.optim_wrapper.optimizer.lr == 0.5
    cfg = build_train_config(config_file, resume='ckpt.pth')
    assert cfg.resume is True and cfg.load_from == 'ckpt.pth'
    with pytest.raises(BadInputError, match="auto_scale_lr"):
        build_train_config(config_file, auto_scale_lr=True)


def test_test_config(config_file):
    from mmhybrid.engine import build_test_config
    cfg = build_test_config(config_file, 'ckpt.pth', out='preds.pkl', show_dir='vis')
    assert cfg.load_from == 'ckpt.pth'
    assert cfg.test_evaluator == [dict(type='CocoMetric'),
                                  dict(type='DumpDetResults', out_file_path='preds.pkl')]
    assert cfg.default_hooks.visualization.draw is True
    assert cfg.default_hooks.visualization.test_out_dir == 'vis'
    with pytest.raises(ValueError, match='.pkl'):
        build_test_config(config_file, 'ckpt.pth', out='preds.json')
    with pytest.raises(ValueError, match='tta_model'):
        build_test_config(config_file, 'ckpt.pth', tta=True)
    # On the CPU the model is tested optimised by default; --plain and --switch-to-deploy
    # replace that.
    assert cfg.custom_hooks[-1] == dict(type='mmhybrid.OptimizeForInferenceHook')
    assert 'SwitchToDeployHook' not in str(cfg.get('custom_hooks'))
    cfg = build_test_config(config_file, 'ckpt.pth', switch_to_deploy=True)
    assert cfg.custom_hooks[-1] == dict(type='mmhybrid.SwitchToDeployHook')
    assert 'Optimize' not in str(cfg.custom_hooks)
    cfg = build_test_config(config_file, 'ckpt.pth', plain=True)
    assert 'Optimize' not in str(cfg.get('custom_hooks'))


def test_amp_trains_fp32_without_a_gpu(config_file, monkeypatch):
    from mmhybrid.engine import build_train_config, runner, train_fp32_without_amp_device
    cfg = build_train_config(config_file, amp=True)
    monkeypatch.setattr(runner, 'amp_device_available', lambda: True)
    assert not train_fp32_without_amp_device(cfg)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    monkeypatch.setattr(runner, 'amp_device_available', lambda: False)
    assert train_fp32_without_amp_device(cfg)
    assert cfg.optim_wrapper.to_dict() == dict(type='OptimWrapper',
                                               optimizer=dict(type='SGD', lr=0.1))


@pytest.mark.skipif(torch.cuda.is_available(), reason='a GPU trains in mixed precision')
def test_train_tool_with_amp_on_a_cpu_says_so_and_trains(tmp_path):
    """A config that asks for mixed precision (as the UniFormer detectors do) trains in fp32 on a
    machine without a GPU, where mmengine's AmpOptimWrapper would fail an assert."""
    import subprocess
    import sys

    from mmhybrid.datasets import ShapesSpec, generate_shapes
    data = generate_shapes(tmp_path / 'shapes', layouts=['ade20k'],
                           spec=ShapesSpec(num_train=2, num_val=1, image_size=64))['ade20k']
    options = [f'{split}_dataloader.dataset.data_root={data}' for split in ('train', 'val',
                                                                             'test')]
    options += ['train_cfg.max_iters=1', 'train_cfg.val_interval=10',
                'default_hooks.checkpoint.interval=1', 'train_dataloader.batch_size=1',
                'train_dataloader.num_workers=0', 'optim_wrapper.type=AmpOptimWrapper',
                'optim_wrapper.loss_scale=dynamic']
    proc = subprocess.run([sys.executable, str(REPO / 'tools' / 'train.py'),
                           str(REPO / 'configs' / 'demo' / 'fpn_van_demo.py'), '--work-dir',
                           str(tmp_path / 'work'), '--cfg-options', *options],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert out.count('no GPU here: mixed precision (AmpOptimWrapper) needs one, training in fp32')\
        == 1
    assert (tmp_path / 'work' / 'iter_1.pth').is_file()


def test_switch_to_deploy_hook_finds_the_backbone_through_wrappers():
    from types import SimpleNamespace

    import torch.nn as nn

    from mmhybrid.engine import SwitchToDeployHook

    class Backbone(nn.Module):
        deployed = False

        def switch_to_deploy(self):
            self.deployed = True
            return self

    class Detector(nn.Module):
        def __init__(self, backbone):
            super().__init__()
            self.backbone = backbone

    class Wrapper(nn.Module):  # as the test-time augmentation model holds the detector
        def __init__(self, module):
            super().__init__()
            self.module = module

    backbone = Backbone()
    SwitchToDeployHook().before_test(SimpleNamespace(model=Wrapper(Detector(backbone))))
    assert backbone.deployed
    with pytest.raises(TypeError, match='Linear backbone has no switch_to_deploy'):
        SwitchToDeployHook().before_test(SimpleNamespace(model=Detector(nn.Linear(1, 1))))


def test_optimize_hooks_find_the_backbones_through_wrappers():
    from types import SimpleNamespace

    import torch.nn as nn

    from mmhybrid.engine import OptimizeForInferenceHook, OptimizeForTrainingHook
    from mmhybrid.registry import MODELS

    def detector():
        model = nn.Module()
        model.backbone = MODELS.build(dict(type='mmhybrid.VAN', arch=dict(
            embed_dims=[8, 16, 24, 32], depths=[1, 1, 1, 1], mlp_ratios=[2, 2, 2, 2])))
        model.neck = nn.Conv2d(32, 8, 1)
        wrapper = nn.Module()
        wrapper.module = model  # as the test-time augmentation model holds the detector
        return model, wrapper

    model, wrapper = detector()
    OptimizeForTrainingHook(phase_form=False).before_train(SimpleNamespace(model=wrapper))
    assert 'PhaseDilatedConv2d' not in {type(m).__name__ for m in model.backbone.modules()}
    OptimizeForTrainingHook().before_train(SimpleNamespace(model=wrapper))
    assert 'PhaseDilatedConv2d' in {type(m).__name__ for m in model.backbone.modules()}
    OptimizeForInferenceHook().before_test(SimpleNamespace(model=wrapper))
    assert model.backbone.optimized and not model.training


# ---------------------------------------------------------------- CPU distributed

def test_cpu_ddp_wrapper_is_registered_by_import_under_its_own_name():
    """mmdet's/mmseg's own tools get the wrapper from ``import mmhybrid`` (custom_imports);
    mmengine's MMDistributedDataParallel is left as it is."""
    from mmengine.model import MMDistributedDataParallel
    from mmengine.registry import MODEL_WRAPPERS

    from mmhybrid.engine import CPU_DDP, CPUDistributedDataParallel
    assert MODEL_WRAPPERS.get(CPU_DDP) is CPUDistributedDataParallel
    assert MODEL_WRAPPERS.get('MMDistributedDataParallel') is MMDistributedDataParallel


def test_setup_cpu_distributed_leaves_single_process_runs_alone():
    from mmengine.config import Config

    from mmhybrid.engine import setup_cpu_distributed
    cfg = Config(dict(launcher='none'))
    setup_cpu_distributed(cfg)
    assert cfg.to_dict() == dict(launcher='none')


def test_setup_cpu_distributed_picks_gloo_and_the_cpu_wrapper(monkeypatch):
    import torch
    from mmengine.config import Config

    from mmhybrid.engine import CPU_DDP, setup_cpu_distributed
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    cfg = Config(dict(launcher='slurm', find_unused_parameters=True))  # slurm: no init here
    setup_cpu_distributed(cfg)
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg == dict(type=CPU_DDP, broadcast_buffers=False,
                                         find_unused_parameters=True)
    custom = Config(dict(launcher='slurm', model_wrapper_cfg=dict(type='MyWrapper')))
    setup_cpu_distributed(custom)
    assert custom.model_wrapper_cfg == dict(type='MyWrapper')


# ---------------------------------------------------------------- WeightSyncCheckHook

def test_parameter_digests_see_every_bit():
    import torch

    from mmhybrid.engine import mismatched_parameters, parameter_digests
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    a = parameter_digests(model)
    assert set(a) == {'0.weight', '0.bias', '1.weight', '1.bias'}
    with torch.no_grad():
        w = model[1].weight
        w.view(-1)[0] = torch.nextafter(w.view(-1)[0], torch.tensor(10.0))  # one ulp
    b = parameter_digests(model)
    assert mismatched_parameters([a, a]) == []
    assert mismatched_parameters([a, b]) == ['1.weight']
    assert mismatched_parameters([a, {k: v for k, v in a.items() if k != '0.bias'}]) == ['0.bias']


def test_weight_sync_check_hook_arguments():
    from mmhybrid.engine import WeightSyncCheckHook
    with pytest.raises(ValueError, match='action'):
        WeightSyncCheckHook(action='ignore')
    with pytest.raises(ValueError, match='interval'):
        WeightSyncCheckHook(interval=0)


def _sync_check_worker(rank, world, port, perturb, result_dir):
    import os

    import torch
    import torch.distributed as dist

    from mmhybrid.engine import WeightSyncCheckHook
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
        if perturb and rank == 1:
            with torch.no_grad():
                model[0].bias.add_(1e-6)

        class Runner:
            iter = 5
        Runner.model = model
        try:
            WeightSyncCheckHook().after_train(Runner())
            outcome = 'ok'
        except RuntimeError as e:
            outcome = str(e)
        with open(os.path.join(result_dir, f'rank{rank}.txt'), 'w') as f:
            f.write(outcome)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize('perturb', [False, True], ids=['identical', 'one-rank-differs'])
def test_weight_sync_check_hook_across_two_processes(tmp_path, perturb):
    import socket

    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    mp.spawn(_sync_check_worker, args=(2, port, perturb, str(tmp_path)), nprocs=2)
    outcomes = [(tmp_path / f'rank{r}.txt').read_text() for r in range(2)]
    if perturb:
        for text in outcomes:  # every rank raises, naming the parameter
            assert 'parameters differ between the 2 ranks' in text and '0.bias' in text, text
            assert '0.weight' not in text
    else:
        assert outcomes == ['ok', 'ok']


class _TinyNet(torch.nn.Module):
    """A norm (excluded from weight decay by the configs' paramwise ``custom_keys``) and a layer
    scale (decayed: VAN's UPerNet recipe decays its layer scales, as the authors' configs do)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.norm = torch.nn.BatchNorm2d(4)
        self.layer_scale = torch.nn.Parameter(torch.full((4,), 0.5))

    def forward(self, x):
        return (self.norm(self.conv(x)) * self.layer_scale[:, None, None]).square().mean()


def _optim_wrapper(model, constructor=None):
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile(str(REPO / 'configs' / 'seg' / 'upernet_van_b2_160k.py')).optim_wrapper
    cfg = dict(cfg)
    cfg.pop('_delete_', None)
    if constructor is not None:
        cfg['constructor'] = constructor
    return build_optim_wrapper(model, Config(dict(w=cfg)).w)


def test_plain_groups_constructor_keeps_the_default_groups():
    """The configs' constructor builds mmengine's default groups (same parameters, lr, weight
    decay per group), as plain dicts."""
    model = _TinyNet()
    ours = _optim_wrapper(model)  # the config names mmhybrid's constructor
    default = _optim_wrapper(model, 'DefaultOptimWrapperConstructor')
    assert ours.optimizer.param_groups and all(
        type(group) is dict for group in ours.optimizer.param_groups)
    assert not all(type(group) is dict for group in default.optimizer.param_groups)
    assert len(ours.optimizer.param_groups) == len(default.optimizer.param_groups)
    for mine, theirs in zip(ours.optimizer.param_groups, default.optimizer.param_groups):
        assert mine.keys() == theirs.keys()
        assert [id(p) for p in mine['params']] == [id(p) for p in theirs['params']]
        assert all(mine[k] == theirs[k] for k in mine if k != 'params')
    decays = {id(p): g['weight_decay'] for g in ours.optimizer.param_groups for p in g['params']}
    assert decays[id(model.norm.weight)] == 0 and decays[id(model.conv.weight)] > 0
    assert decays[id(model.layer_scale)] == decays[id(model.conv.weight)]


def test_compiled_train_step_with_paramwise_groups():
    """mmengine's compile=True compiles ``train_step`` with the optimizer step inside: with the
    configs' constructor dynamo traces AdamW over the paramwise groups (mmengine's default
    constructor's ConfigDict groups stop it), and the compiled steps equal eager ones."""
    import torch._dynamo as dynamo
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    results = []
    for compiled in (False, True):
        torch.manual_seed(1)
        model = _TinyNet()
        wrapper = _optim_wrapper(model)

        def step(batch):
            loss = model(batch)
            wrapper.update_params(loss)
            return loss

        run = torch.compile(step, backend='eager') if compiled else step
        for _ in range(2):
            run(x)
        results.append([p.detach().clone() for p in model.parameters()])
    dynamo.reset()
    for eager, compiled in zip(*results):
        torch.testing.assert_close(compiled, eager)
