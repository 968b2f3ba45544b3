"""The table of released dense models (mmhybrid/checkpoint/zoo.py): well-formed rows, configs that
exist, parse and build the head, family and variant of their row, and docs/model_zoo.md in step."""
import dataclasses
import importlib.util
import shlex
from functools import lru_cache
from pathlib import Path

import pytest
from mmengine.config import Config

from mmhybrid.checkpoint import zoo
from mmhybrid.checkpoint.zoo import RELEASED

REPO = Path(__file__).resolve().parents[1]
# What the model of each head builds (mmdet/mmseg types).
HEAD_TYPES = {
    'retinanet': ('RetinaNet', None), 'maskrcnn': ('MaskRCNN', 'Shared2FCBBoxHead'),
    'cascade_maskrcnn': ('CascadeRCNN', 'ConvFCBBoxHead'),
    'fpn': ('EncoderDecoder', 'FPNHead'), 'upernet': ('EncoderDecoder', 'UPerHead'),
}
FAMILY_TYPES = {'crossformer': 'mmhybrid.CrossFormer', 'uniformer': 'mmhybrid.UniFormer',
                'van': 'mmhybrid.VAN'}
# The zoo files UniFormer-light under UniFormer: its own backbone class.
VARIANT_TYPES = {('uniformer', 'xxs'): 'mmhybrid.UniFormerLight',
                 ('uniformer', 'xs'): 'mmhybrid.UniFormerLight'}
# The config arch of each variant name the rows use.
ARCHS = {('crossformer', 's'): 'small', ('crossformer', 'b'): 'base',
         ('crossformer', 'l'): 'large', ('uniformer', 's'): 'small', ('uniformer', 'b'): 'base'}
# Plausible ranges of the authors' numbers (percent).
METRIC_RANGES = {'bbox AP': (30., 60.), 'mask AP': (30., 50.), 'mIoU': (35., 55.),
                 'mIoU (ms)': (35., 56.)}


def row_id(row):
    return Path(row.config).stem + ('_' + row.pretrain if row.pretrain != 'IN-1k' else '')


def test_rows_are_unique_and_cover_the_released_families():
    assert len(RELEASED) == len(set(RELEASED))
    configs = [row.config for row in RELEASED]
    assert len(configs) == len(set(configs)), 'two rows evaluate with the same config'
    # One download per file: the rows sharing a link are one file tested several ways.
    by_url = {}
    for row in RELEASED:
        by_url.setdefault(row.url, []).append(row)
    for rows in by_url.values():
        assert len({(r.family, r.variant, r.head, r.schedule, r.pretrain) for r in rows}) == 1
        assert len({zoo.checkpoint_paths(r) for r in rows}) == 1
    assert {row.family for row in RELEASED} == set(FAMILY_TYPES)
    # Files per family and task, as the authors' READMEs list them.
    counts = {}
    for row in RELEASED:
        counts[row.family, row.task] = counts.get((row.family, row.task), 0) + 1
    assert len({row.url for row in RELEASED}) == 35  # 43 rows: 4 files tested 3 ways
    assert counts == {('crossformer', 'det'): 4, ('crossformer', 'seg'): 6,
                      ('uniformer', 'det'): 8, ('uniformer', 'seg'): 15, ('van', 'seg'): 10}


def test_rows_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RELEASED[0].published_metric = 0.


@pytest.mark.parametrize('row', RELEASED, ids=row_id)
def test_row_is_well_formed(row):
    assert row.task in zoo.TASKS and row.head in zoo.HEADS[row.task]
    assert row.pretrain in ('IN-1k', 'IN-22k')
    assert row.url.startswith('https://') and row.host
    assert row.readme.split(':')[0] in ('cheerss/CrossFormer@crossformer', 'Sense-X/UniFormer',
                                        'Visual-Attention-Network/VAN-Segmentation')
    assert row.official_config.endswith('.py') and row.config.endswith('.py')
    assert row.config.startswith(f'configs/{row.task}/{row.head}_{row.family}_{row.variant}_')
    assert row.status == zoo.NOT_REMEASURED
    for name, value in ((row.metric_name, row.published_metric), *row.extra_metrics):
        assert isinstance(value, float)
        low, high = METRIC_RANGES[name]
        assert low < value < high, f'{name} {value} is implausible'
    names = [row.metric_name, *(name for name, _ in row.extra_metrics)]
    assert len(names) == len(set(names))
    if row.task == 'det':
        assert row.metric_name == 'bbox AP'
        assert ('mask AP' in names) == (row.head != 'retinanet')
    else:
        assert set(names) <= {'mIoU', 'mIoU (ms)'}
        if 'mIoU' in names and 'mIoU (ms)' in names:
            assert dict(row.extra_metrics)['mIoU (ms)'] >= row.published_metric


@pytest.mark.parametrize('row', RELEASED, ids=row_id)
def test_row_config_fits_the_row(row):
    path = REPO / row.config
    assert path.is_file(), f'{row.config} is missing'
    cfg = Config.fromfile(str(path))
    model_type, head_type = HEAD_TYPES[row.head]
    assert cfg.model.type == model_type
    if row.task == 'seg':
        assert cfg.model.decode_head.type == head_type
        assert cfg.model.decode_head.num_classes == 150
    else:
        heads = cfg.model.get('roi_head', {}).get('bbox_head', cfg.model.get('bbox_head'))
        heads = heads if isinstance(heads, list) else [heads]
        assert all(h.num_classes == 80 for h in heads)
        if head_type:
            assert [h.type for h in heads] == [head_type] * len(heads)
    backbone = cfg.model.backbone
    assert backbone.type == VARIANT_TYPES.get((row.family, row.variant),
                                              FAMILY_TYPES[row.family])
    assert backbone.arch == ARCHS.get((row.family, row.variant), row.variant)
    if row.family == 'van':
        # UPerNet files from the newer VAN code (eps 1e-5), FPN files from the older (1e-6).
        assert backbone.get('stage_norm_eps', 1e-6) == (1e-5 if row.head == 'upernet' else 1e-6)
    if row.pretrain == 'IN-22k':
        assert '22k' in backbone.init_cfg.checkpoint
    if row.multi_scale or any(name.endswith('(ms)') for name, _ in row.extra_metrics):
        assert cfg.tta_pipeline[1].type == 'TestTimeAug'


@pytest.mark.parametrize('row', RELEASED, ids=row_id)
def test_row_commands(row):
    download, convert, test, *more = zoo.commands(row)
    src, dst = zoo.checkpoint_paths(row)
    assert row.url in download and src in download
    assert convert.split() == ['python', 'tools/convert_checkpoint.py', src, dst, '--config',
                               row.config]
    assert test.split()[:4] == ['python', 'tools/test.py', row.config, dst]
    assert ('--tta' in test) == row.multi_scale
    assert len(more) == sum(name.endswith('(ms)') for name, _ in row.extra_metrics)


@lru_cache(maxsize=None)
def _tool(name):
    spec = importlib.util.spec_from_file_location(f'_zoo_{name}', REPO / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('row', RELEASED, ids=row_id)
def test_row_commands_parse_with_the_tools_own_arguments(row, monkeypatch):
    """The page's convert and test commands are valid command lines of tools/convert_checkpoint.py
    and tools/test.py (their own argument parsers), with the row's files and config."""
    monkeypatch.setenv('LOCAL_RANK', '0')  # tools/test.py's parse_args sets it
    src, dst = zoo.checkpoint_paths(row)
    _, convert, *tests = zoo.commands(row)
    args = _tool('convert_checkpoint').parse_args(shlex.split(convert)[2:])
    assert (args.src, args.dst, args.config) == (src, dst, row.config)
    for test in tests:
        args = _tool('test').parse_args(shlex.split(test, comments=True)[2:])
        assert (args.config, args.checkpoint) == (row.config, dst)
        assert args.tta == ('--tta' in test)


def test_model_zoo_page_lists_every_row():
    page = (REPO / 'docs' / 'model_zoo.md').read_text()
    assert not zoo.update_model_zoo_page(str(REPO / 'docs' / 'model_zoo.md'), write=False), \
        'docs/model_zoo.md is out of date: run python tools/model_zoo.py'
    for row in RELEASED:
        assert row.url in page and f'`{row.config}`' in page
        assert all(command in page for command in zoo.commands(row))
    assert 'conversion tested on a file in the released layout; published number not ' \
           're-measured' in page
    assert 'docs/model_zoo.md' in (REPO / 'README.md').read_text()


def test_model_zoo_page_needs_its_markers(tmp_path):
    page = tmp_path / 'zoo.md'
    page.write_text('# no markers\n')
    with pytest.raises(ValueError, match='generated'):
        zoo.update_model_zoo_page(str(page))
    assert page.read_text() == '# no markers\n'
