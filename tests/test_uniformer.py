"""UniFormer: attention modes, layer scale, options, arch checks, and what the dense layout
adds on top of the parity references. Parity with the official classification and detection
code and checkpoint conversion are in test_parity.py and test_converters.py."""
import pytest
import torch
import torch.nn.functional as F

from archs import UNIFORMER_CLASSIFICATION
from helpers import assert_stages_close, converted_model, parity_case
from mmhybrid.checkpoint import CheckpointMismatchError, convert_state_dict, load_converted
from mmhybrid.models import UniFormer
from mmhybrid.models.backbones.uniformer import UniFormerSABlock


# ---------------------------------------------------------------------------- parity
def test_parity_detection_out_norms():
    """The 230x302 detection references (raw stages) are in test_parity.py; here: the defaults
    are the official dense layout, and forward() adds its per-output LayerNorms on top."""
    data = parity_case('uniformer_small_reduced_det')
    model = converted_model('uniformer_small_reduced')
    assert model.attn_modes == ('hybrid', 'global') and model.window_size == 14
    with torch.no_grad():
        raw = model.stage_outputs(data['inputs'])
        outs = model(data['inputs'])
    tol = data['meta']['tolerances']['float32_impl']
    assert_stages_close(raw, data['stages'], tol)
    for out, stage, (key, norm) in zip(outs, raw, model.out_norms.items()):
        assert norm.eps == 1e-6
        torch.testing.assert_close(out, norm(stage))
    # With out_norm_cfg=None forward() gives the raw stages too.
    plain = converted_model('uniformer_small_reduced', out_norm_cfg=None)
    with torch.no_grad():
        assert_stages_close(plain(data['inputs']), data['stages'], tol)


def test_parity_global_and_window_modes_differ_at_detection_size():
    # The detection references are not reproduced by the classification (global) layout: the
    # hybrid windows matter at 230x302 (stage 3 is 14x18, padded to 14x28).
    data = parity_case('uniformer_small_reduced_det')
    model = converted_model('uniformer_small_reduced', **UNIFORMER_CLASSIFICATION)
    with torch.no_grad():
        outs = model.stage_outputs(data['inputs'])
    torch.testing.assert_close(outs[1], data['stages'][1], atol=2e-5, rtol=1e-4)
    assert (outs[2] - data['stages'][2]).abs().max() > 1e-3


# ---------------------------------------------------------------------------- attention modes
def reference_window_attention(block: UniFormerSABlock, x: torch.Tensor) -> torch.Tensor:
    """Explicit per-window softmax attention over the zero-padded normed map (B, H, W, C)."""
    b, h, w, c = x.shape
    s = block.window_size
    heads = block.attn.num_heads
    hp, wp = -(-h // s) * s, -(-w // s) * s
    padded = x.new_zeros(b, hp, wp, c)
    padded[:, :h, :w] = x
    out = torch.zeros_like(padded)
    for i in range(0, hp, s):
        for j in range(0, wp, s):
            tokens = padded[:, i:i + s, j:j + s].reshape(b, s * s, c)
            q, k, v = block.attn.qkv(tokens).reshape(b, s * s, 3, heads, c // heads).permute(
                2, 0, 3, 1, 4)
            attn = (q @ k.transpose(-2, -1) * (c // heads) ** -0.5).softmax(-1)
            y = (attn @ v).transpose(1, 2).reshape(b, s * s, c)
            out[:, i:i + s, j:j + s] = block.attn.proj(y).reshape(b, s, s, c)
    return out[:, :h, :w]


@pytest.mark.parametrize('size', [(5, 5), (6, 9), (3, 4), (10, 7)])
def test_window_attention_pads_with_zeros_without_mask(size):
    torch.manual_seed(0)
    block = UniFormerSABlock(16, 2, 2., True, 0., 5, None, dict(type='GELU')).eval()
    x = torch.randn(2, *size, 16)
    with torch.no_grad():
        mine = block._attention(x)
        ref = reference_window_attention(block, x)
    torch.testing.assert_close(mine, ref, atol=1e-5, rtol=1e-5)


def test_window_equals_global_when_one_window_covers_the_map():
    torch.manual_seed(0)
    arch = dict(embed_dims=[8, 16, 32, 32], depths=[1, 1, 2, 1], head_dim=8)
    glob = UniFormer(arch=arch, attn_modes=('global', 'global')).eval()
    win = UniFormer(arch=arch, attn_modes=('window', 'window'), window_size=4).eval()
    win.load_state_dict(glob.state_dict())
    x = torch.randn(1, 3, 64, 64)  # stage 3: 4x4, stage 4: 2x2 (padded to 4x4)
    with torch.no_grad():
        a, b = glob.stage_outputs(x), win.stage_outputs(x)
    torch.testing.assert_close(a[2], b[2])
    # Stage 4 pads 2x2 to 4x4: the padded tokens take part as keys, so the results differ.
    assert not torch.allclose(a[3], b[3])


def test_attention_layouts():
    arch = dict(embed_dims=[8, 16, 32, 32], depths=[1, 1, 8, 4], head_dim=8)
    with torch.device('meta'):
        hybrid = UniFormer(arch=arch, attn_modes=('hybrid', 'hybrid'), window_size=7)
        window = UniFormer(arch=arch, attn_modes=('window', 'global'))
    assert [b.window_size for b in hybrid.stages[2].blocks] == [7, 7, 7, None, 7, 7, 7, None]
    assert [b.window_size for b in hybrid.stages[3].blocks] == [7, 7, 7, None]
    assert [b.window_size for b in window.stages[2].blocks] == [14] * 8
    assert [b.window_size for b in window.stages[3].blocks] == [None] * 4


def test_attention_goes_through_sdpa(monkeypatch):
    calls = []
    sdpa = F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append(args[0].shape)
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(F, 'scaled_dot_product_attention', spy)
    model = UniFormer(arch=dict(embed_dims=[8, 16, 32, 32], depths=[1, 1, 1, 1], head_dim=8),
                      window_size=3).eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    # Stage 3 (4x4 → padded 6x6: four 3x3 windows), stage 4 global (2x2).
    assert calls == [torch.Size([4, 4, 9, 8]), torch.Size([1, 4, 4, 8])]


# ---------------------------------------------------------------------------- options
def test_layer_scale_is_an_arch_option_without_global_state():
    with torch.device('meta'):
        with_ls = UniFormer(arch='base_ls')
        without = UniFormer(arch='base')
    block = with_ls.stages[2].blocks[0]
    assert block.gamma_1.shape == (320, )
    assert torch.equal(UniFormer(arch=dict(embed_dims=[8, 16, 32, 32], depths=[1, 1, 1, 1],
                                           head_dim=8, layer_scale_init=1e-6)
                                 ).stages[3].blocks[0].gamma_2, torch.full((32, ), 1e-6))
    # Building a layer-scale model first must not change models built afterwards.
    assert without.stages[2].blocks[0].gamma_1 is None
    assert not any('gamma' in k for k in without.state_dict())


def test_arch_table():
    heads = {name: UniFormer.arch_zoo[name]['head_dim'] for name in UniFormer.arch_zoo}
    assert heads == dict(small=64, small_plus=32, small_plus_dim64=64, base=64, base_ls=64)
    with torch.device('meta'):
        conv = UniFormer(arch='s+')
        patch = UniFormer(arch='s')
    assert conv.arch_name == 'small_plus' and conv.stages[2].blocks[0].attn.num_heads == 10
    assert isinstance(conv.stages[0].downsample.proj, torch.nn.Sequential)
    assert patch.stages[2].blocks[0].attn.num_heads == 5


def test_real_variant_param_counts():
    # Classification totals of the released variants minus the head and its BatchNorm.
    expected = {'small': 21.5e6, 'small_plus': 24.0e6, 'small_plus_dim64': 24.0e6,
                'base': 49.8e6, 'base_ls': 49.8e6}
    for arch, total in expected.items():
        with torch.device('meta'):
            model = UniFormer(arch=arch, out_norm_cfg=None)
        params = sum(p.numel() for p in model.parameters())
        head = 512 * 1000 + 1000 + 2 * 512
        assert params + head == pytest.approx(total, rel=0.01), arch


def test_default_dense_settings():
    with torch.device('meta'):
        model = UniFormer()
    assert model.arch_name == 'small'
    assert model.attn_modes == ('hybrid', 'global') and model.window_size == 14
    assert sorted(model.out_norms) == ['0', '1', '2', '3']
    assert all(n.eps == 1e-6 for n in model.out_norms.values())


def test_with_cp_per_stage():
    with torch.device('meta'):
        model = UniFormer(with_cp=[2])
    assert [s.with_cp for s in model.stages] == [False, False, True, False]


@pytest.mark.parametrize('kwargs,match', [
    (dict(attn_modes='hybrid'), 'attn_modes'),
    (dict(attn_modes=('hybrid', )), 'attn_modes'),
    (dict(attn_modes=('local', 'global')), 'attn_modes'),
    (dict(window_size=0), 'window_size'),
    (dict(window_size=7.0), 'window_size'),
    (dict(arch=dict(embed_dims=[8, 16, 30, 32], depths=[1, 1, 1, 1], head_dim=8)), 'head_dim'),
    (dict(arch=dict(embed_dims=[8, 16, 32, 32], depths=[1, 1, 1, 1], head_dim=0)), 'head_dim'),
    (dict(arch=dict(embed_dims=[8, 16, 32, 32], depths=[1, 1, 1, 1], head_dim=8,
                    layer_scale_init='1e-6')), 'layer_scale_init'),
])
def test_invalid_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UniFormer(**kwargs)


# ---------------------------------------------------------------------------- checkpoints
def test_small_checkpoint_into_base_is_an_error():
    with torch.device('meta'):
        small = UniFormer(arch='small', out_norm_cfg=None)
        base = UniFormer(arch='base', out_norm_cfg=None)
    sd, report = convert_state_dict(small.state_dict())
    with pytest.raises(CheckpointMismatchError,
                       match=r"arch='base'.*absent from the checkpoint.*matches arch \['small'\]"):
        load_converted(base, sd, report)


def test_head_dim_is_not_inferred_from_weights():
    # small_plus and small_plus_dim64 have identical shapes: only the arch says the head_dim.
    with torch.device('meta'):
        a = UniFormer(arch='small_plus')
        b = UniFormer(arch='small_plus_dim64')
    assert {k: v.shape for k, v in a.state_dict().items()} == \
        {k: v.shape for k, v in b.state_dict().items()}
    assert a.stages[2].blocks[0].attn.num_heads == 2 * b.stages[2].blocks[0].attn.num_heads


@pytest.mark.parametrize('norm_cfg,norm_type', [
    (None, torch.nn.BatchNorm2d),
    (dict(type='SyncBN'), torch.nn.SyncBatchNorm),
    (dict(type='GN', num_groups=1), torch.nn.GroupNorm),
])
@pytest.mark.parametrize('conv_stem', [False, True])
def test_norm_cfg_sets_every_batch_norm(norm_cfg, norm_type, conv_stem):
    """The conv blocks' (and the conv stem's) BatchNorms follow ``norm_cfg`` like the other
    families' (SyncBN for multi-GPU training); the state-dict keys stay those of the files."""
    arch = dict(embed_dims=[8, 16, 32, 32], depths=[1, 1, 1, 1], head_dim=8,
                conv_stem=conv_stem)
    model = UniFormer(arch=arch, norm_cfg=norm_cfg)
    reference = UniFormer(arch=arch)
    norms = [m for m in model.modules() if isinstance(m, norm_type)]
    assert len(norms) == sum(isinstance(m, torch.nn.BatchNorm2d) for m in reference.modules())
    assert len(norms) == 4 + (5 if conv_stem else 0)
    if norm_type is not torch.nn.SyncBatchNorm:  # SyncBN runs only in a process group
        with torch.no_grad():
            assert len(model.eval()(torch.randn(1, 3, 64, 64))) == 4
    if norm_type is not torch.nn.GroupNorm:
        assert list(model.state_dict()) == list(reference.state_dict())
