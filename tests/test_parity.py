"""Parity with the authors' code, one table for every family.

Each row: the official file whose weights the reduced model loads (converted by mmhybrid's own
converter), the parity case (inputs and expected outputs), the reference key, the model kwargs,
the methods compared, whether the float64 check (atol = rtol = 1e-6) runs too and whether the
model is compared after its ``switch_to_deploy()`` (folded in the row's precision). The
references live in tests/data/parity; the weights and inputs are rebuilt by the parity rule
(tests/parity_rule.py), which the first tests here check bit for bit against the authors'
tensors.
"""
from typing import NamedTuple, Optional, Tuple

import pytest
import torch

from archs import UNIFORMER_CLASSIFICATION
from mmhybrid import optimize_for_inference
from helpers import (OFFICIAL_FILES, as_float, assert_stages_close, checkpoint_name,
                     converted_model, official_state_dict, parity_case, stored_case)
from parity_rule import checkpoint_fingerprint, tensor_sha256

pytestmark = pytest.mark.quick  # `make test-quick`


class Row(NamedTuple):
    weights: str
    case: str
    size: Tuple[int, int]
    key: str = 'stages'
    kwargs: Optional[dict] = None
    methods: Tuple[str, ...] = ('forward', )
    float64: bool = False
    deploy: bool = False  # compared after switch_to_deploy() (folded in the row's precision)


ROWS = {
    'van-224': Row('van_b0_reduced', 'van_b0_reduced', (224, 224), float64=True),
    'van-230x302': Row('van_b0_reduced', 'van_b0_reduced_230x302', (230, 302)),
    'van-230x302-deployed': Row('van_b0_reduced', 'van_b0_reduced_230x302', (230, 302),
                                deploy=True),
    # At 224 both LDA semantics coincide with the classification code.
    'crossformer-224-iclr': Row('crossformer_tiny_reduced', 'crossformer_tiny_reduced',
                                (224, 224), kwargs=dict(lda_mode='iclr'),
                                methods=('stage_outputs', )),
    'crossformer-224-regional': Row('crossformer_tiny_reduced', 'crossformer_tiny_reduced',
                                    (224, 224), kwargs=dict(lda_mode='regional'),
                                    methods=('stage_outputs', )),
    # 230x302 padded to 256x320: the main-branch dense code (regional LDA) and the ICLR'22 one.
    'crossformer-det-regional': Row('crossformer_tiny_reduced', 'crossformer_tiny_reduced_det',
                                    (256, 320), kwargs=dict(lda_mode='regional'), float64=True),
    'crossformer-det-iclr': Row('crossformer_tiny_reduced', 'crossformer_tiny_reduced_det',
                                (256, 320), 'stages_iclr', dict(lda_mode='iclr'), float64=True),
    # CrossFormer++ (main-branch code): the classifier at 224 with the ImageNet groups (the
    # variant's defaults: stage-1/2 LDA regions padded and masked, stages 3-4 global), and the
    # dense backbone with the det/seg configs' groups (230x302 padded to 256x320) and with the
    # ImageNet groups at 224x320 (stages 3-4: one group of max(H, W), padded and masked).
    'crossformerpp-224': Row('crossformerpp_small_reduced', 'crossformerpp_small_reduced',
                             (224, 224), float64=True),
    'crossformerpp-det': Row('crossformerpp_small_reduced', 'crossformerpp_small_reduced_det',
                             (256, 320), kwargs=dict(group_size=7, interval=(8, 4, 2, 1)),
                             float64=True),
    'crossformerpp-224x320': Row('crossformerpp_small_reduced',
                                 'crossformerpp_small_reduced_224x320', (224, 320),
                                 float64=True),
    'uniformer-s-cls': Row('uniformer_small_reduced', 'uniformer_small_reduced', (224, 224),
                           kwargs=UNIFORMER_CLASSIFICATION, methods=('stage_outputs', ),
                           float64=True),
    'uniformer-splus-cls': Row('uniformer_smallplus_reduced', 'uniformer_smallplus_reduced',
                               (224, 224), kwargs=UNIFORMER_CLASSIFICATION,
                               methods=('stage_outputs', ), float64=True),
    # The defaults are the official dense layout: hybrid stage 3 with 14x14 windows.
    'uniformer-s-det': Row('uniformer_small_reduced', 'uniformer_small_reduced_det', (230, 302),
                           methods=('stage_outputs', ), float64=True),
    'uniformer-s-det-deployed': Row('uniformer_small_reduced', 'uniformer_small_reduced_det',
                                    (230, 302), methods=('stage_outputs', ), float64=True,
                                    deploy=True),
    # UniFormer-light: the classification code at 224, the dense code (the same model) at
    # 230x302 and at 64x32, where stage 4 is 2x1 and its pruning blocks keep one token.
    'uniformer-light-cls': Row('uniformer_light_xxs_reduced', 'uniformer_light_xxs_reduced',
                               (224, 224), methods=('stage_outputs', ), float64=True),
    'uniformer-light-det': Row('uniformer_light_xxs_reduced', 'uniformer_light_xxs_reduced_det',
                               (230, 302), methods=('stage_outputs', ), float64=True),
    'uniformer-light-det-deployed': Row('uniformer_light_xxs_reduced',
                                        'uniformer_light_xxs_reduced_det', (230, 302),
                                        methods=('stage_outputs', ), float64=True, deploy=True),
    'uniformer-splus-cls-deployed': Row('uniformer_smallplus_reduced',
                                        'uniformer_smallplus_reduced', (224, 224),
                                        kwargs=UNIFORMER_CLASSIFICATION,
                                        methods=('stage_outputs', ), float64=True, deploy=True),
    'uniformer-light-64x32': Row('uniformer_light_xxs_reduced',
                                 'uniformer_light_xxs_reduced_64x32', (64, 32),
                                 methods=('stage_outputs', ), float64=True),
    'cmt-224': Row('cmt_tiny_reduced', 'cmt_tiny_reduced', (224, 224), float64=True),
    'cmt-224-deployed': Row('cmt_tiny_reduced', 'cmt_tiny_reduced', (224, 224),
                            methods=('stage_outputs', 'forward'), float64=True, deploy=True),
    'transcnn-256': Row('transcnn_small_reduced', 'transcnn_small_reduced', (256, 256),
                        methods=('stage_outputs', 'forward'), float64=True),
    'transcnn-256-deployed': Row('transcnn_small_reduced', 'transcnn_small_reduced',
                                 (256, 256), float64=True, deploy=True),
    'hatnet-224': Row('hatnet_small_reduced', 'hatnet_small_reduced', (224, 224),
                      methods=('stage_outputs', 'forward'), float64=True),
}
CASES = sorted({row.case for row in ROWS.values()})
PRECISIONS = [pytest.param(name, 'float32', id=f'{name}-float32') for name in ROWS] + [
    pytest.param(name, 'float64', id=f'{name}-float64')
    for name, row in ROWS.items() if row.float64]


# ----------------------------------------------------------------------- the parity rule
@pytest.mark.parametrize('name', OFFICIAL_FILES)
def test_parity_rule_rebuilds_the_official_checkpoint(name):
    """Every weight the rule rebuilds has the bytes of the authors' tensor (sha256 recorded
    from their file), and the whole checkpoint has their fingerprint."""
    spec = stored_case(name)['checkpoint_spec']
    state_dict = official_state_dict(name)
    assert [[k, list(v.shape), str(v.dtype).replace('torch.', '')]
            for k, v in state_dict.items()] == spec['keys']
    assert set(spec['sha256']) | set(spec['kept']) == set(state_dict)
    assert not set(spec['sha256']) & set(spec['kept'])
    rebuilt = {k: tensor_sha256(state_dict[k]) for k in spec['sha256']}
    assert rebuilt == spec['sha256']
    assert checkpoint_fingerprint(state_dict) == stored_case(name)['meta'][
        'checkpoint_fingerprint']
    # Only integer buffers and CrossFormer's geometry buffers are stored as they are.
    assert all(not v.is_floating_point() or k.endswith(('.biases', '.attn_mask'))
               for k, v in spec['kept'].items())


@pytest.mark.parametrize('case', CASES)
def test_parity_rule_rebuilds_the_inputs(case):
    spec = stored_case(case)['input_spec']
    inputs = parity_case(case)['inputs']
    assert inputs.dtype == torch.float32
    assert tensor_sha256(inputs) == spec['sha256']


@pytest.mark.parametrize('case', [c for c in CASES if c not in OFFICIAL_FILES])
def test_parity_companion_file_uses_the_main_weights(case):
    main = checkpoint_name(case)
    assert stored_case(case)['meta']['checkpoint_fingerprint'] == \
        stored_case(main)['meta']['checkpoint_fingerprint']


# ----------------------------------------------------------------------------- the table
@pytest.mark.parametrize('name,precision', PRECISIONS)
def test_parity(name, precision):
    row = ROWS[name]
    data = parity_case(row.case)
    assert tuple(data['inputs'].shape) == (2, 3, *row.size)
    model = converted_model(row.weights, **(row.kwargs or {}))
    inputs = data['inputs']
    tolerances = data['meta']['tolerances'][f'{precision}_impl']
    if precision == 'float64':
        model, inputs = model.double(), inputs.double()
        assert tolerances == dict(atol=1e-6, rtol=1e-6)
    if row.deploy:
        model.switch_to_deploy()
    for method in row.methods:
        with torch.no_grad():
            outs = getattr(model, method)(inputs)
        assert all(o.dtype == inputs.dtype for o in outs)
        assert_stages_close(as_float(outs), data[row.key], tolerances)


@pytest.mark.parametrize('name', [name for name, row in ROWS.items() if not row.deploy])
def test_parity_optimized_for_inference(name):
    """Every row again after ``mmhybrid.optimize_for_inference`` (folded, the CPU fast paths
    swapped in), float32."""
    row = ROWS[name]
    data = parity_case(row.case)
    model = optimize_for_inference(converted_model(row.weights, **(row.kwargs or {})))
    for method in row.methods:
        with torch.no_grad():
            outs = getattr(model, method)(data['inputs'])
        assert_stages_close(as_float(outs), data[row.key],
                            data['meta']['tolerances']['float32_impl'])


@pytest.mark.parametrize('lda_mode', ['iclr', 'regional'])
def test_parity_crossformer_raw_230x302_image_runs(lda_mode):
    # The official dense codes assert even sizes before merging; mmhybrid pads instead.
    model = converted_model('crossformer_tiny_reduced', lda_mode=lda_mode)
    raw = parity_case('crossformer_tiny_reduced_det')['inputs'][..., :230, :302]
    with torch.no_grad():
        outs = model(raw)
    assert [tuple(o.shape[2:]) for o in outs] == [(57, 75), (29, 38), (15, 19), (8, 10)]
    assert all(torch.isfinite(o).all() for o in outs)
