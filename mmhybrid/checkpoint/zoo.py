"""The dense models the backbone authors released, one row per released file and test setting.

Read from the authors' READMEs (cited per row in ``readme``): cheerss/CrossFormer branch
``crossformer`` (``detection/README.md``, ``segmentation/README.md``), Sense-X/UniFormer
(``object_detection/README.md``, ``semantic_segmentation/README.md``) and
Visual-Attention-Network/VAN-Segmentation (``README.md``). CMT, HAT-Net/TransCNN and CrossFormer++
released no detector or segmenter, so they have no row. ``docs/model_zoo.md`` lists every row with
the commands that download, convert and evaluate it (``tests/test_zoo.py`` keeps the two in step).

A file the authors evaluated several ways has one row per way: UniFormer's globally trained
segmenters were tested with 32x32 windows, hybrid and global attention in stage 3 (three configs
over the same file). A row's ``published_metric`` is the number its ``config`` should reproduce
with ``tools/test.py CONFIG CHECKPOINT`` (plus ``--tta`` when ``metric_name`` ends in ``(ms)``);
``extra_metrics`` holds the authors' other numbers for the same file and config (mask AP, or the
multi-scale mIoU, also ``--tta``). Detection metrics are COCO val2017 AP, segmentation ADE20K val
mIoU, both in percent as the authors print them (mmdet prints AP as a fraction).
"""
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import List, Tuple

# Whether the published number was measured again with our code: none has been, as the hosts
# (Google Drive, BaiduCloud, Tsinghua Cloud) need a browser to download from.
NOT_REMEASURED = ('conversion tested on a file in the released layout; published number not '
                  're-measured')
TASKS = ('det', 'seg')
HEADS = {'det': ('retinanet', 'maskrcnn', 'cascade_maskrcnn'), 'seg': ('fpn', 'upernet')}


@dataclass(frozen=True)
class ReleasedModel:
    """One released detector or segmenter file, evaluated one way.

    Attributes:
        family: Backbone family (``'crossformer'``, ``'uniformer'``, ``'van'``).
        variant: Backbone variant as our configs name it (``'s'``, ``'b4'``, ...).
        task: ``'det'`` (COCO) or ``'seg'`` (ADE20K).
        head: ``'retinanet'``, ``'maskrcnn'``, ``'cascade_maskrcnn'``, ``'fpn'`` or
            ``'upernet'``.
        schedule: Training schedule as the authors state it (``'1x'``, ``'3x+MS'``, ``'80k'``,
            ``'160k'``, ...).
        pretrain: The backbone's ImageNet pretraining (``'IN-1k'`` or ``'IN-22k'``).
        metric_name: The metric ``published_metric`` is (``'bbox AP'``, ``'mIoU'``,
            ``'mIoU (ms)'`` for multi-scale + flip as configured in the config's
            ``tta_pipeline``).
        published_metric: The authors' number, in percent.
        host: Where the authors host the file, as their README names it.
        url: The README's link to the file (the first one where it gives several).
        readme: The authors' README that lists the file (``owner/repo[@branch]:path``).
        config: Our config that evaluates the converted file.
        official_config: The authors' config of the row, in their repository.
        notes: What else a user must know (test-time variant, file shared with other rows).
        extra_metrics: The authors' other numbers for this file and config, as
            ``(metric_name, value)`` pairs.
        status: Whether the published number was re-measured with our code.
    """
    family: str
    variant: str
    task: str
    head: str
    schedule: str
    pretrain: str
    metric_name: str
    published_metric: float
    host: str
    url: str
    readme: str
    config: str
    official_config: str
    notes: str = ''
    extra_metrics: Tuple[Tuple[str, float], ...] = ()
    status: str = NOT_REMEASURED

    @property
    def multi_scale(self) -> bool:
        """Whether ``published_metric`` is a multi-scale (``--tta``) number."""
        return self.metric_name.endswith('(ms)')


_CF = 'cheerss/CrossFormer@crossformer:'
_CF_DET, _CF_SEG = _CF + 'detection/README.md', _CF + 'segmentation/README.md'
_UNI_DET = 'Sense-X/UniFormer:object_detection/README.md'
_UNI_SEG = 'Sense-X/UniFormer:semantic_segmentation/README.md'
_VAN_SEG = 'Visual-Attention-Network/VAN-Segmentation:README.md'
_GDRIVE = 'https://drive.google.com/file/d/{}/view?usp=sharing'
_CF_HOST = 'Google Drive / BaiduCloud (key: {})'
_TSINGHUA = 'https://cloud.tsinghua.edu.cn/f/{}/?dl=1'
_UNI_LIGHT = 'UniFormer-light (its own blocks, token pruning in stages 3-4)'
_GLOBAL_FILE = ('trained with global attention; the same file as the {} rows, tested {}')


def _crossformer(variant, task, head, metric, value, drive, baidu_key, official, config,
                 extra=(), notes=''):
    readme = _CF_DET if task == 'det' else _CF_SEG
    schedule = {'retinanet': '1x', 'maskrcnn': '1x', 'fpn': '80k', 'upernet': '160k'}[head]
    return ReleasedModel('crossformer', variant, task, head, schedule, 'IN-1k', metric, value,
                         _CF_HOST.format(baidu_key), _GDRIVE.format(drive), readme, config,
                         official, notes, tuple(extra))


def _uniformer(variant, task, head, schedule, metric, value, drive, official, config, extra=(),
               notes=''):
    readme = _UNI_DET if task == 'det' else _UNI_SEG
    return ReleasedModel('uniformer', variant, task, head, schedule, 'IN-1k', metric, value,
                         'Google Drive', _GDRIVE.format(drive), readme, config, official, notes,
                         tuple(extra))


def _uniformer_global(variant, head, drive, published):
    """The three rows of one globally trained UniFormer segmenter: tested w32, h32, global."""
    schedule, exp = {'fpn': ('80k', 'fpn_seg/exp/fpn_global_'),
                     'upernet': ('160k', 'exp/upernet_global_')}[head]
    size = {'s': 'small', 'b': 'base'}[variant]
    rows = []
    for test, how in (('w32', 'with 32x32 windows in stage 3'),
                      ('h32', 'hybrid (32x32 windows, every 4th block global) in stage 3'),
                      ('g', 'global')):
        others = ', '.join(t for t in ('w32', 'h32', 'g') if t != test)
        ss, ms = published[test]
        rows.append(_uniformer(
            variant, 'seg', head, schedule, 'mIoU', ss, drive,
            f'semantic_segmentation/{exp}{size}/test_config_{test}.py',
            f'configs/seg/{head}_uniformer_{variant}_{schedule}_{test}.py',
            extra=(('mIoU (ms)', ms), ) if ms else (),
            notes=_GLOBAL_FILE.format(others, how)))
    return rows


def _van(variant, head, pretrain, metric, value, url, official, config, notes=''):
    host = 'Tsinghua Cloud' if head == 'upernet' else 'Google Drive'
    schedule = '160k' if head == 'upernet' else '40k'
    return ReleasedModel('van', variant, 'seg', head, schedule, pretrain, metric, value, host,
                         url, _VAN_SEG, config, official, notes)


_VAN_UPERNET_NOTE = ('newer VAN code: stage LayerNorm eps 1e-5 (stage_norm_eps in the config); '
                     'published number multi-scale + flip')
_VAN_FPN_NOTE = 'older VAN code: stage LayerNorm eps 1e-6 (the backbone default)'

RELEASED: Tuple[ReleasedModel, ...] = (
    # CrossFormer (ICLR'22 code, branch `crossformer`: mmdet 2.8 / mmseg 0.12).
    _crossformer('s', 'det', 'retinanet', 'bbox AP', 44.4, '1OEEottS4fYGVZcPZG6WuBlKMK0tZLPZW',
                 'ift3', 'detection/configs/retinanet_crossformer_s_fpn_1x_coco.py',
                 'configs/det/retinanet_crossformer_s_1x.py'),
    _crossformer('b', 'det', 'retinanet', 'bbox AP', 46.2, '1TOuLLf_S4Ixo6COvaHQAocACR4NKKnGz',
                 'hsd5', 'detection/configs/retinanet_crossformer_b_fpn_1x_coco.py',
                 'configs/det/retinanet_crossformer_b_1x.py'),
    _crossformer('s', 'det', 'maskrcnn', 'bbox AP', 45.4, '1qgO3-wnsJQw9Nj304AOj-TjVyadPPtvf',
                 '4omu', 'detection/configs/mask_rcnn_crossformer_s_fpn_1x_coco.py',
                 'configs/det/maskrcnn_crossformer_s_1x.py', extra=(('mask AP', 41.4), )),
    _crossformer('b', 'det', 'maskrcnn', 'bbox AP', 47.2, '1urkCa8Inss9CL1G1OgM4tWR5PSf6Ofn4',
                 'kjf4', 'detection/configs/mask_rcnn_crossformer_b_fpn_1x_coco.py',
                 'configs/det/maskrcnn_crossformer_b_1x.py', extra=(('mask AP', 42.7), )),
    _crossformer('s', 'seg', 'fpn', 'mIoU', 46.4, '1I-zpGG5rvkTtrTUnOF8Fx11yeb6pXGYi', 'sn5h',
                 'segmentation/configs/fpn_crossformer_s_ade20k_40k.py',
                 'configs/seg/fpn_crossformer_s_80k.py',
                 notes='group sizes 14, 14, 7, 7, intervals 16, 8, 2, 1; trained 80k although '
                 'the official file is named _40k'),
    _crossformer('b', 'seg', 'fpn', 'mIoU', 48.0, '1EjAnRc8Sau0un1ymqDVhFebHPeBIjukK', 'joi5',
                 'segmentation/configs/fpn_crossformer_b_ade20k_40k.py',
                 'configs/seg/fpn_crossformer_b_80k.py',
                 notes='trained 80k although the official file is named _40k'),
    _crossformer('l', 'seg', 'fpn', 'mIoU', 49.1, '12WS9lX9yR5skxdt3N2HE3b2EaDSMwUMY', '6v5d',
                 'segmentation/configs/fpn_crossformer_l_ade20k_40k.py',
                 'configs/seg/fpn_crossformer_l_80k.py',
                 notes='group sizes 14, 14, 7, 7, intervals 16, 8, 2, 1; trained 80k although '
                 'the official file is named _40k'),
    _crossformer('s', 'seg', 'upernet', 'mIoU', 47.6, '1VKu4D6oxYdO1VVILLMhOQy8oCxKGH5gx', 'wesb',
                 'segmentation/configs/upernet_crossformer_s_ade20k.py',
                 'configs/seg/upernet_crossformer_s_160k.py', extra=(('mIoU (ms)', 48.4), )),
    _crossformer('b', 'seg', 'upernet', 'mIoU', 49.7, '1B8VTNeidrzlfsOkQUKgmX4m_UfCIm58i', 'j061',
                 'segmentation/configs/upernet_crossformer_b_ade20k.py',
                 'configs/seg/upernet_crossformer_b_160k.py', extra=(('mIoU (ms)', 50.6), )),
    _crossformer('l', 'seg', 'upernet', 'mIoU', 50.4, '1I9ph5MeCwlTF2PNCkIYMFXYsdywp9nU1', '17ks',
                 'segmentation/configs/upernet_crossformer_l_ade20k.py',
                 'configs/seg/upernet_crossformer_l_160k.py', extra=(('mIoU (ms)', 51.4), )),
    # UniFormer (vendored mmdet 2.11 / mmseg 0.13).
    _uniformer('s', 'det', 'maskrcnn', '1x', 'bbox AP', 45.6, '13KhBYkHKQg-CyhAgn1LQM1K0R4bwSpWT',
               'object_detection/exp/mask_rcnn_1x_hybrid_small/config.py',
               'configs/det/maskrcnn_uniformer_s_1x.py', extra=(('mask AP', 41.6), )),
    _uniformer('b', 'det', 'maskrcnn', '1x', 'bbox AP', 47.4, '13YrVEiqFraSuX1NzdhPnhw7bFXTvEii1',
               'object_detection/exp/mask_rcnn_1x_hybrid_base/config.py',
               'configs/det/maskrcnn_uniformer_b_1x.py', extra=(('mask AP', 43.1), )),
    _uniformer('s', 'det', 'maskrcnn', '3x+MS', 'bbox AP', 48.2,
               '13O6P-spXbWuXgUjLw8AyRITYTwhdOwuD',
               'object_detection/exp/mask_rcnn_3x_ms_hybrid_small/config.py',
               'configs/det/maskrcnn_uniformer_s_3x_ms.py', extra=(('mask AP', 43.4), )),
    _uniformer('b', 'det', 'maskrcnn', '3x+MS', 'bbox AP', 50.3,
               '12xyS2xqFSYMkHUiVYVGVW7gaLIxuK2q6',
               'object_detection/exp/mask_rcnn_3x_ms_hybrid_base/config.py',
               'configs/det/maskrcnn_uniformer_b_3x_ms.py', extra=(('mask AP', 44.8), )),
    _uniformer('s', 'det', 'cascade_maskrcnn', '3x+MS', 'bbox AP', 52.1,
               '13IhpRkh2hE8WfDyw-5-NXSUVZjn9DX20',
               'object_detection/exp/cascade_mask_rcnn_3x_ms_hybrid_small/config.py',
               'configs/det/cascade_maskrcnn_uniformer_s_3x_ms.py', extra=(('mask AP', 45.2), )),
    _uniformer('b', 'det', 'cascade_maskrcnn', '3x+MS', 'bbox AP', 53.8,
               '13G9wc73CmS1Kb-kVelFSDlK-ezUBadzQ',
               'object_detection/exp/cascade_mask_rcnn_3x_ms_hybrid_base/config.py',
               'configs/det/cascade_maskrcnn_uniformer_b_3x_ms.py', extra=(('mask AP', 46.4), )),
    _uniformer('xxs', 'det', 'maskrcnn', '1x', 'bbox AP', 42.8,
               '1CUyS-hWbpLvOXHZ35n4BZPmiCbMXt0mc',
               'object_detection/exp_light/mask_rcnn_1x_xxs/config.py',
               'configs/det/maskrcnn_uniformer_xxs_1x.py', extra=(('mask AP', 39.2), ),
               notes=_UNI_LIGHT),
    _uniformer('xs', 'det', 'maskrcnn', '1x', 'bbox AP', 44.6,
               '1CRHb-W5Csy_509J4Ux62TOT7dpixdsOi',
               'object_detection/exp_light/mask_rcnn_1x_xs/config.py',
               'configs/det/maskrcnn_uniformer_xs_1x.py', extra=(('mask AP', 40.9), ),
               notes=_UNI_LIGHT),
    _uniformer('b', 'seg', 'fpn', '80k', 'mIoU', 47.0, '14XokJDp1oYDV9jZnniMXyk3AnVfk1S1-',
               'semantic_segmentation/fpn_seg/exp/fpn_hybrid_base/config.py',
               'configs/seg/fpn_uniformer_b_80k.py', notes='B_h14: trained and tested hybrid '
               '(14x14 windows)'),
    *_uniformer_global('s', 'fpn', '14bEsZqMw35tmDgrvYA_dRMsSC0Z4TX2Y',
                       dict(w32=(45.6, None), h32=(46.2, None), g=(46.6, None))),
    *_uniformer_global('b', 'fpn', '14dLoIcAUWjyo1d5XXuo1yb2jcslt_t4P',
                       dict(w32=(47.0, None), h32=(47.7, None), g=(48.0, None))),
    *_uniformer_global('s', 'upernet', '13hOneJiFqwEneUz1Zpqo1W2uv7BsoXGF',
                       dict(w32=(46.6, 48.4), h32=(47.0, 48.5), g=(47.6, 48.5))),
    *_uniformer_global('b', 'upernet', '14bEgmFbTijBoTKTwny_aCJlARs6z31mP',
                       dict(w32=(49.1, 50.6), h32=(49.5, 50.7), g=(50.0, 50.8))),
    _uniformer('xxs', 'seg', 'fpn', '80k', 'mIoU', 42.3, '1DPakdzr6G7n8t3_ZAFCx8wFX1r5h_V7-',
               'semantic_segmentation/fpn_seg/exp_light/fpn_xxs/config.py',
               'configs/seg/fpn_uniformer_xxs_80k.py', notes=_UNI_LIGHT),
    _uniformer('xs', 'seg', 'fpn', '80k', 'mIoU', 44.4, '1Dj3GiQLK7YZPKSgz_Uk8JL1J66XEvw0Y',
               'semantic_segmentation/fpn_seg/exp_light/fpn_xs/config.py',
               'configs/seg/fpn_uniformer_xs_80k.py', notes=_UNI_LIGHT),
    # VAN (VAN-Segmentation, mmseg 0.x). The UPerNet numbers are multi-scale only.
    _van('b2', 'upernet', 'IN-1k', 'mIoU (ms)', 50.1, _TSINGHUA.format('68c8b494f3824d30bf07'),
         'configs/upernet/1k_pretrained/upernet_van_b2_512x512_160k_ade20k.py',
         'configs/seg/upernet_van_b2_160k.py', _VAN_UPERNET_NOTE),
    _van('b3', 'upernet', 'IN-1k', 'mIoU (ms)', 50.6, _TSINGHUA.format('97bde65fbe334b358797'),
         'configs/upernet/1k_pretrained/upernet_van_b3_512x512_160k_ade20k.py',
         'configs/seg/upernet_van_b3_160k.py', _VAN_UPERNET_NOTE),
    _van('b4', 'upernet', 'IN-1k', 'mIoU (ms)', 52.2, _TSINGHUA.format('5273f92c77a94395b804'),
         'configs/upernet/1k_pretrained/upernet_van_b4_512x512_160k_ade20k.py',
         'configs/seg/upernet_van_b4_160k.py', _VAN_UPERNET_NOTE),
    _van('b4', 'upernet', 'IN-22k', 'mIoU (ms)', 53.5, _TSINGHUA.format('8f1f0a9c4c71478fa43b'),
         'configs/upernet/22k_pretrained/upernet_van_b4_512x512_160k_ade20k_22k.py',
         'configs/seg/upernet_van_b4_in22k_160k.py', _VAN_UPERNET_NOTE),
    _van('b5', 'upernet', 'IN-22k', 'mIoU (ms)', 53.9, _TSINGHUA.format('2175bdc39d094e5f8f99'),
         'configs/upernet/22k_pretrained/upernet_van_b5_512x512_160k_ade20k_22k.py',
         'configs/seg/upernet_van_b5_160k.py', _VAN_UPERNET_NOTE),
    _van('b6', 'upernet', 'IN-22k', 'mIoU (ms)', 54.7, _TSINGHUA.format('853d9d0ea0f44c2aa090'),
         'configs/upernet/22k_pretrained/upernet_van_b6_512x512_160k_ade20k_22k.py',
         'configs/seg/upernet_van_b6_160k.py', _VAN_UPERNET_NOTE),
    _van('b0', 'fpn', 'IN-1k', 'mIoU', 38.5, _GDRIVE.format('1Jl8LtyvOl6xeNMKCjpK2Rp_tGRfua8LJ'),
         'configs/sem_fpn/fpn_van_b0_ade20k_40k.py', 'configs/seg/fpn_van_b0_40k.py',
         _VAN_FPN_NOTE + '; README row "VAN-Tiny"'),
    _van('b1', 'fpn', 'IN-1k', 'mIoU', 42.9, _GDRIVE.format('1Xfuo9D3Fo7b6zSCLTWE77k2jgYSHVSb8'),
         'configs/sem_fpn/fpn_van_b1_ade20k_40k.py', 'configs/seg/fpn_van_b1_40k.py',
         _VAN_FPN_NOTE + '; README row "VAN-Small"'),
    _van('b2', 'fpn', 'IN-1k', 'mIoU', 46.7, _GDRIVE.format('1Ar4Hq9DjgaULQKfwM-jJvSO-D6gendpf'),
         'configs/sem_fpn/fpn_van_b2_ade20k_40k.py', 'configs/seg/fpn_van_b2_40k.py',
         _VAN_FPN_NOTE + '; README row "VAN-Base"'),
    _van('b3', 'fpn', 'IN-1k', 'mIoU', 48.1, _GDRIVE.format('1v61uCi07IC6eyVHn3xbJqz4nOiGa1POY'),
         'configs/sem_fpn/fpn_van_b3_ade20k_40k.py', 'configs/seg/fpn_van_b3_40k.py',
         _VAN_FPN_NOTE + '; README row "VAN-Large"'),
)


def checkpoint_paths(row: ReleasedModel) -> Tuple[str, str]:
    """Where the model zoo's commands put the downloaded file and the converted one. The rows of
    one file tested several ways (``_w32``, ``_h32``, ``_g``) share both."""
    stem = re.sub(r'_(w32|h32)$', '_g', PurePosixPath(row.config).stem)
    return f'checkpoints/released/{stem}.pth', f'checkpoints/{stem}.pth'


def commands(row: ReleasedModel) -> Tuple[str, ...]:
    """The steps of a row: download by hand (a comment: the hosts need a browser), convert,
    evaluate (``--tta`` for a multi-scale number; a second evaluation when the authors also
    published a multi-scale number for the row)."""
    src, dst = checkpoint_paths(row)
    download = f'# download by hand from {row.host}: {row.url} -> {src}'
    convert = f'python tools/convert_checkpoint.py {src} {dst} --config {row.config}'
    test = f'python tools/test.py {row.config} {dst}'
    if row.multi_scale:
        return download, convert, test + ' --tta'
    extra_ms = [name for name, _ in row.extra_metrics if name.endswith('(ms)')]
    return (download, convert, test) + tuple(f'{test} --tta  # {name}' for name in extra_ms)


def _metrics(row: ReleasedModel) -> str:
    return '; '.join(f'{name} {value:.1f}'
                     for name, value in ((row.metric_name, row.published_metric),
                                         *row.extra_metrics))


def model_zoo_markdown() -> List[str]:
    """The generated part of docs/model_zoo.md: a table with one line per row of
    :data:`RELEASED`, then each row's commands."""
    lines = ['| # | family | variant | task | head | schedule | pretrain | published (authors) | '
             'host | our config | official config |',
             '|---|---|---|---|---|---|---|---|---|---|---|']
    for i, row in enumerate(RELEASED, 1):
        lines.append(
            f'| {i} | {row.family} | {row.variant} | {row.task} | {row.head} | {row.schedule} | '
            f'{row.pretrain} | {_metrics(row)} | [{row.host}]({row.url}) | `{row.config}` | '
            f'`{row.readme.split(":")[0]}:{row.official_config}` |')
    for i, row in enumerate(RELEASED, 1):
        lines += ['', f'#### {i}. {PurePosixPath(row.config).stem}', '']
        lines.append(f'{_metrics(row)} ({row.readme}); {row.status}.'
                     + (f' Note: {row.notes}.' if row.notes else ''))
        lines += ['', '```bash', *commands(row), '```']
    return lines


BEGIN_MARK = '<!-- generated by tools/model_zoo.py from mmhybrid/checkpoint/zoo.py: begin -->'
END_MARK = '<!-- generated: end -->'


def update_model_zoo_page(path: str, write: bool = True) -> bool:
    """Replaces the generated block of ``path`` (between :data:`BEGIN_MARK` and
    :data:`END_MARK`) with :func:`model_zoo_markdown`. Returns whether it differed; writes only
    when it did and ``write`` is true.

    Raises:
        ValueError: The page lacks the markers.
    """
    with open(path, encoding='utf-8') as f:
        text = f.read()
    if text.count(BEGIN_MARK) != 1 or text.count(END_MARK) != 1 or \
            text.index(BEGIN_MARK) > text.index(END_MARK):
        raise ValueError(f'{path}: needs one {BEGIN_MARK!r} line followed by one '
                         f'{END_MARK!r} line')
    head, rest = text.split(BEGIN_MARK)
    _, tail = rest.split(END_MARK)
    new = '\n'.join([head + BEGIN_MARK, '', *model_zoo_markdown(), '', END_MARK]) + tail
    if new == text:
        return False
    if write:
        with open(path, 'w', encoding='utf-8') as f:
            f.write(new)
    return True
