"""tools/get_flops.py and tools/benchmark.py: counts that include attention, a runnable benchmark."""
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mmhybrid.models import VAN
from mmhybrid.utils import count_macs

REPO = Path(__file__).resolve().parents[1]


class _Attention(torch.nn.Module):

    def forward(self, q, mask=None):
        return F.scaled_dot_product_attention(q, q, q, attn_mask=mask)


@pytest.mark.parametrize('mask', [None, 'float', 'bool'])
def test_sdpa_is_counted(mask):
    q = torch.randn(2, 3, 40, 8)
    attn_mask = {None: None, 'float': torch.zeros(40, 40),
                 'bool': torch.ones(40, 40, dtype=torch.bool)}[mask]
    # q k^T and attn v: B * heads * L * S * (E + Ev) multiply-accumulates.
    assert count_macs(_Attention(), q, attn_mask) == 2 * 3 * 40 * 40 * (8 + 8)


def test_van_flops_match_the_paper():
    # VAN paper, Table: B0 0.9G, B2 5.0G at 224x224 (MACs).
    with torch.device('cpu'):
        macs = count_macs(VAN(arch='b0').eval(), torch.randn(1, 3, 224, 224))
    assert macs / 1e9 == pytest.approx(0.88, rel=0.03)


# Every row of the README's table: (family, arch, input side, the paper's GFLOPs (MACs) as
# printed, whether the paper counts attention, the paper's params of the classification model in
# M as printed or None when its head is not a Linear, and the GFLOPs of the authors' own released
# model where the paper's figure is not what that model counts, else None).
PAPER_COMPLEXITY = [
    ('CrossFormer', 'small', 224, '4.9', True, '30.7', None),
    ('CrossFormer', 'base', 224, '9.2', True, '52.0', None),
    # CrossFormer++ (cheerss/CrossFormer@795201075f0066e78408882617312084e25aef61:README.md): its
    # 4.9G for S is CrossFormer-S's figure; the authors' CrossFormer++-S (models/crossformer.py
    # built from configs/crossformer_pp/small_patch4_group_const_224.yaml there) counts 4.43G
    # (its own flops() method: 4.39G).
    ('CrossFormer', 'pp-small', 224, '4.9', True, '23.3', 4.43),
    ('CrossFormer', 'pp-base', 224, '9.5', True, '52.0', None),  # L 16.6G and H 21.8G agree too
    ('UniFormer', 'small', 224, '3.6', True, '22', None),
    ('UniFormer', 'base', 224, '8.3', True, '50', None),
    # UniFormer-light (Sense-X/UniFormer@52a0415e4e0dda880fab8ffbc710e4d8e171149d:
    # image_classification/README.md): token pruning included (XXS 1.25G without); params: two
    # classifiers (pooled map, class token). XS's 2.0G: the authors' uniformer_xs
    # (image_classification/models/uniformer_light.py there) counts 1.93G.
    ('UniFormerLight', 'xxs', 224, '1.3', True, None, None),
    ('UniFormerLight', 'xs', 224, '2.0', True, None, 1.93),
    ('CMT', 'small', 224, '4.0', True, None, None),  # params: the known 26.3M vs 25.1M discrepancy
    # The HAT-Net paper's counts leave attention out.
    ('HATNet', 'tiny', 224, '2.0', False, '12.7', None),
    ('HATNet', 'small', 224, '4.3', False, '25.7', None),
    ('HATNet', 'medium', 224, '8.3', False, '42.9', None),
    ('HATNet', 'large', 224, '11.5', False, '63.1', None),
    ('TransCNN', 'small', 224, None, True, '26.5', None),
    ('VAN', 'b0', 224, '0.9', True, '4.1', None),
    ('VAN', 'b1', 224, '2.5', True, '13.9', None),
    ('VAN', 'b2', 224, '5.0', True, '26.6', None),
    ('VAN', 'b3', 224, '9.0', True, '44.8', None),
]


def _agrees(ours: float, printed: str) -> bool:
    """Within 2% of the printed figure, or equal at its precision (VAN-B0's 0.86 G is printed
    as 0.9)."""
    decimals = len(printed.partition('.')[2])
    return abs(ours - float(printed)) <= max(0.02 * float(printed), 0.5 * 10 ** -decimals + 1e-9)


@pytest.mark.parametrize('family,arch,side,gflops,with_attention,params,code_gflops',
                         PAPER_COMPLEXITY, ids=lambda v: v if isinstance(v, str) else '')
def test_flops_and_params_match_the_papers(family, arch, side, gflops, with_attention, params,
                                           code_gflops):
    """The README's FLOPs and params agree with the papers' tables (ImageNet models at the
    pretrain size; params of the backbone plus a Linear classifier), except where the paper's
    figure is not what the authors' released model counts: there ours equal that count."""
    from mmhybrid.registry import MODELS
    kwargs = dict(attn_modes=('global', 'global')) if family == 'UniFormer' else {}
    model = MODELS.build(dict(type=f'mmhybrid.{family}', arch=arch, **kwargs)).eval()
    if gflops is not None:
        macs = count_macs(model, torch.randn(1, 3, side, side), attention=with_attention) / 1e9
        if code_gflops is None:
            assert _agrees(macs, gflops), macs
        else:  # the README states the difference: the paper's figure is off, the code's is met
            assert not _agrees(macs, gflops) and macs == pytest.approx(code_gflops, abs=0.005)
    if params is not None:
        total = sum(p.numel() for p in model.parameters()) + model.out_channels[-1] * 1000 + 1000
        assert _agrees(total / 1e6, params), total / 1e6


def test_agreement_rule():
    assert _agrees(0.864, '0.9') and _agrees(11.44, '11.5') and _agrees(21.55, '22')
    assert not _agrees(1.931, '2.0') and not _agrees(4.427, '4.9') and not _agrees(0.84, '0.9')


def test_attention_can_be_left_out_of_the_count():
    q = torch.randn(2, 3, 40, 8)
    assert count_macs(_Attention(), q, attention=False) == 0


def test_explicit_reference_attention_equals_sdpa():
    from mmhybrid.utils.benchmark import explicit_attention
    q, k, v = torch.randn(3, 2, 2, 30, 8).unbind(0)
    bias = torch.randn(30, 30)
    mask = torch.rand(30, 30) > 0.3
    mask[:, 0] = True
    for m in (None, bias, mask):
        torch.testing.assert_close(explicit_attention(q, k, v, attn_mask=m),
                                   F.scaled_dot_product_attention(q, k, v, attn_mask=m))


def test_benchmark_runs(tmp_path):
    out = tmp_path / 'bench.json'
    md = tmp_path / 'bench.md'
    subprocess.run([sys.executable, str(REPO / 'tools' / 'benchmark.py'), 'van:b0', '--sizes',
                    '64x96', '--repeat', '1', '--warmup', '0', '--compare-reference',
                    '--roof-size', '256', '--json', str(out), '--markdown', str(md)],
                   check=True, timeout=300, capture_output=True)
    report = json.loads(out.read_text())
    results = report['results']
    assert {(r['mode'], r['attention']) for r in results} == {
        ('fwd', 'sdpa'), ('fwd', 'explicit'), ('fwdbwd', 'sdpa'), ('fwdbwd', 'explicit')}
    assert all(r['median_s'] > 0 for r in results)
    # FLOPs: 2 per multiply-accumulate of one forward, a training step three forwards' worth.
    from mmhybrid.utils import build_backbone
    macs = count_macs(build_backbone('van:b0').eval(), torch.randn(1, 3, 64, 96))
    assert {r['mode']: r['flops'] for r in results} == {'fwd': 2 * macs, 'fwdbwd': 6 * macs}
    assert all(r['gflops_per_s'] == pytest.approx(r['flops'] / r['median_s'] / 1e9)
               for r in results)
    assert [(r['dtype'], r['when'], r['size']) for r in report['roofs']] == [
        ('fp32', 'before', 256), ('fp32', 'after', 256)]
    assert all(r['gflops_per_s'] > 0 for r in report['roofs'])
    text = md.read_text()
    assert 'speed-up' in text and 'Matmul roof' in text and '% of roof' in text
    # On the CPU every forward row is also measured optimised, alternating with the plain one.
    optimized = [r for r in results if r['optimize']]
    assert [(r['mode'], r['attention']) for r in optimized] == [('fwd', 'sdpa')]
    assert optimized[0]['ab_plain_median_s'] > 0 and optimized[0]['ab_optimized_median_s'] > 0
    assert 'mmhybrid.optimize_for_inference' in text


def test_benchmark_report_keeps_the_notes(tmp_path):
    from mmhybrid.utils.benchmark import markers, write_report
    page = tmp_path / 'benchmarks.md'
    write_report(str(page), '| first table |\n')
    assert page.read_text().startswith('# Benchmarks') and '| first table |' in page.read_text()
    begin, end = markers('cpu')
    page.write_text(f'# Benchmarks\n\nNotes above.\n\n{begin}\n| old |\n{end}\n\nNotes below.\n')
    write_report(str(page), '| new |\n')
    text = page.read_text()
    assert '| old |' not in text and '| new |' in text
    assert text.index('Notes above.') < text.index('| new |') < text.index('Notes below.')
    assert f'| new |\n{end}\n\nNotes below.' in text  # the blank line after the block stays
    write_report(str(page), '| gpu |\n', key='cuda')  # another device's table is added
    text = page.read_text()
    assert '| new |' in text and text.index('Notes below.') < text.index('| gpu |')
    write_report(str(page), '| gpu 2 |\n', key='cuda')
    assert '| gpu |' not in page.read_text() and '| new |' in page.read_text()


def test_get_flops_cli():
    out = subprocess.run([sys.executable, str(REPO / 'tools' / 'get_flops.py'), 'van:b2'],
                         check=True, timeout=300, capture_output=True, text=True).stdout
    assert 'params    26.07 M' in out


def test_get_flops_rows_match_the_counters():
    from mmhybrid.utils import backbone_complexity, build_backbone, count_params, format_complexity
    rows = backbone_complexity('van:b0', (64, 96))
    model = build_backbone('van:b0').eval()
    x = torch.randn(1, 3, 64, 96)
    assert [r.name for r in rows] == ['backbone', 'backbone without attention']
    assert rows[0].params == count_params(model) and rows[0].macs == count_macs(model, x)
    assert rows[1].macs == count_macs(model, x, attention=False)
    assert format_complexity(rows, (64, 96)).splitlines()[0] == 'input shape: 1x3x64x96'


def test_unknown_backbone_is_named():
    from mmhybrid.utils import build_backbone, resolve_specs
    with pytest.raises(ValueError, match="'nope:b0'"):
        build_backbone('nope:b0')
    with pytest.raises(ValueError, match="'nope'"):
        resolve_specs(['van:b0', 'nope'])
    assert resolve_specs(['all'])[-1] == 'van:b2'
    proc = subprocess.run([sys.executable, str(REPO / 'tools' / 'benchmark.py'), 'nope'],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unknown backbone 'nope'" in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_tools_are_thin_command_lines():
    """No tool imports another tool or rewrites sys.argv: the logic lives in the package."""
    tools = sorted((REPO / 'tools').glob('*.py'))
    names = {p.stem for p in tools}
    for path in tools:
        text = path.read_text()
        assert 'sys.argv =' not in text, path.name
        for name in names:
            assert f'from {name} import' not in text and f'import {name}\n' not in text, \
                f'{path.name} imports tools/{name}.py'


# --------------------------------------------------------- missing data or checkpoint files
@pytest.mark.parametrize('tool,args,expected', [
    ('train.py', ['configs/det/maskrcnn_crossformer_s_1x.py'],
     ['data root of train_dataloader: data/coco/', 'model.backbone.init_cfg: '
      'pretrained/crossformer-s.pth']),
    ('test.py', ['configs/seg/upernet_van_b2_160k.py', 'work_dirs/none.pth'],
     ['data root of test_dataloader: data/ade/ADEChallengeData2016',
      'checkpoint to test: work_dirs/none.pth']),
])
def test_tools_name_missing_inputs_without_a_traceback(tool, args, expected, tmp_path):
    """The card's own command on a fresh clone: what is missing, where to get it, how to try the
    package without it; exit status 2 and no traceback (was: pycocotools' FileNotFoundError)."""
    proc = subprocess.run([sys.executable, str(REPO / 'tools' / tool),
                           *[str(REPO / a) if a.startswith('configs/') else a for a in args]],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert 'Traceback' not in proc.stderr
    for line in expected:
        assert line in proc.stderr
    assert 'make demo' in proc.stderr and 'README.md' in proc.stderr
    if tool == 'test.py':  # testing loads the trained checkpoint, not the ImageNet file
        assert 'init_cfg' not in proc.stderr


def test_missing_inputs_follows_wrapped_datasets_and_annotation_files(tmp_path):
    from mmengine.config import Config

    from mmhybrid.engine import missing_inputs
    (tmp_path / 'root').mkdir()
    (tmp_path / 'ckpt.pth').write_bytes(b'')
    cfg = Config(dict(
        model=dict(backbone=dict(init_cfg=[dict(type='Pretrained', checkpoint=str(
            tmp_path / 'ckpt.pth'))]), neck=dict(init_cfg=dict(
                type='Pretrained', checkpoint=str(tmp_path / 'neck.pth')))),
        train_dataloader=dict(dataset=dict(type='RepeatDataset', dataset=dict(
            data_root=str(tmp_path / 'root'), ann_file='ann/train.json'))),
        val_dataloader=dict(dataset=dict(type='ConcatDataset', datasets=[
            dict(data_root=str(tmp_path / 'nowhere'), ann_file='x.json')]))))
    missing = missing_inputs(cfg, ('train', 'val'), [(None, 'load_from'),
                                                      ('https://host/x.pth', 'url')])
    assert missing == [
        f'annotation file of train_dataloader: {tmp_path}/root/ann/train.json',
        f'data root of val_dataloader: {tmp_path}/nowhere',
        f'model.neck.init_cfg: {tmp_path}/neck.pth',
    ]
    assert missing_inputs(cfg, (), pretrained=False) == []


def test_benchmark_compile_rows(monkeypatch, tmp_path):
    """--compile: each row measured again with ``compile=True`` (in its own worker), and the
    report sets the compiled rows against their eager rows with the compile time."""
    from mmhybrid.utils import benchmark
    jobs = []

    def fake_worker(job, err_stream=None):
        jobs.append(job)
        if job.get('roof'):
            return dict(job, repeat=1, median_s=1.0, gflops_per_s=100.0)
        result = dict(job, size=list(job['size']), attention='sdpa', images_per_s=1.0,
                      peak_mem_mb=1.0, flops=10**9, median_s=0.5 if job['compile'] else 1.0)
        if job['compile']:
            result['compile_s'] = 30.0
        return dict(result, gflops_per_s=result['flops'] / result['median_s'] / 1e9)

    monkeypatch.setattr(benchmark, 'run_worker', fake_worker)
    page = tmp_path / 'benchmarks.md'
    results = benchmark.run_benchmark(['van:b0'], ['64'], device='cpu', modes=['fwd'],
                                      compile=True, stream=io.StringIO(),
                                      markdown_path=str(page))
    # Its own block of the page: the eager table (block 'cpu') is kept.
    assert benchmark.markers('cpu-compile')[0] in page.read_text()
    assert [(j['mode'], j['compile']) for j in jobs if not j.get('roof')] == [
        ('fwd', False), ('fwd', True)]
    report = benchmark.to_markdown(results, 'cmd')
    assert '| van:b0 | 64x64 | fp32 | fwd | 1000.0 | 500.0 | 2.00x | 30 |' in report
    assert 'sdpa, compiled' in report
    # A compiled run of training steps only gets a third block: both tables are kept.
    benchmark.run_benchmark(['van:b0'], ['64'], device='cpu', modes=['fwdbwd'], compile=True,
                            stream=io.StringIO(), markdown_path=str(page))
    text = page.read_text()
    assert benchmark.markers('cpu-compile-train')[0] in text
    assert '| van:b0 | 64x64 | fp32 | fwd | 1000.0 | 500.0 | 2.00x | 30 |' in text
    assert '| van:b0 | 64x64 | fp32 | fwdbwd | 1000.0 | 500.0 | 2.00x | 30 |' in text


@pytest.mark.parametrize('mode', ['fwd', 'fwdbwd'])
def test_benchmark_compiles_inference_frozen(mode, monkeypatch):
    """Compiled forward rows freeze the weights (inductor's ``freezing`` on during every call,
    ``compile_frozen``, as deployed); compiled training rows compile plainly (a frozen graph
    has no weight gradients)."""
    import torch._inductor.config as inductor_config
    from mmhybrid.utils import benchmark
    calls = []

    def fake_compile(model, **kwargs):
        def run(x):
            calls.append((kwargs, inductor_config.freezing, torch.is_grad_enabled()))
            return model(x)
        return run

    monkeypatch.setattr(torch, 'compile', fake_compile)
    result = benchmark.measure('van:b0', (64, 64), 'cpu', 'fp32', mode, reference=False,
                               warmup=1, repeat=1, batch=1, kwargs={}, compile=True)
    frozen = mode == 'fwd'
    assert calls == [({}, frozen, not frozen)] * 2  # warm-up and timed call
    assert not inductor_config.freezing
    assert result['freezing'] is frozen and result['compile'] is True
    assert (' (frozen) |' in benchmark.to_markdown([result], 'cmd')) is frozen
