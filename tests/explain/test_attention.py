"""Attention maps (every MultiheadAttention layer, every head) and attention rollout."""

import numpy as np
import pytest

import ember
from ember import explain, nn
from tests.nn.harness import load_from_torch


def _encoder(layers=2, d=8, heads=2):
    ember.manual_seed(3)
    layer = nn.TransformerEncoderLayer(d, heads, 16, 0.1, batch_first=True)
    return nn.TransformerEncoder(layer, layers)


def test_maps_of_a_single_layer_equal_its_own_weights_per_head():
    mha = nn.MultiheadAttention(8, 4, batch_first=True).double()
    q = ember.randn(2, 5, 8, dtype=ember.float64)
    kv = ember.randn(2, 3, 8, dtype=ember.float64)
    pad = ember.tensor([[False, False, True], [False, False, False]])
    maps = explain.attention_maps(mha, q, kv, kv, key_padding_mask=pad)
    _, own = mha(q, kv, kv, key_padding_mask=pad, average_attn_weights=False)
    assert list(maps) == [""]
    assert tuple(maps[""].shape) == (2, 4, 5, 3)
    np.testing.assert_allclose(maps[""].numpy(), own.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(maps[""].sum(-1).numpy(), 1.0, rtol=1e-12)
    assert float(maps[""][0, :, :, 2].abs().max()) == 0.0  # the padded key


def test_encoder_maps_match_each_layers_attention_on_its_input_and_leave_output_unchanged():
    enc = _encoder()
    enc.train()  # attention_maps switches to eval and back
    x = ember.randn(3, 6, 8)
    pad = ember.zeros(3, 6, dtype=ember.bool)
    pad[1, 4:] = True
    inputs = []
    handles = [layer.register_forward_pre_hook(lambda m, a: inputs.append(a[0]))
               for layer in enc.layers]
    try:
        maps = explain.attention_maps(enc, x, src_key_padding_mask=pad)
    finally:
        for h in handles:
            h.remove()
    assert enc.training
    assert list(maps) == ["layers.0.self_attn", "layers.1.self_attn"]
    enc.eval()
    for layer, h, weights in zip(enc.layers, inputs, maps.values()):
        _, own = layer.self_attn(h, h, h, key_padding_mask=pad, average_attn_weights=False)
        np.testing.assert_allclose(weights.numpy(), own.detach().numpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(weights.sum(-1).numpy(), 1.0, rtol=1e-5)
        assert float(weights[1, :, :, 4:].abs().max()) == 0.0
    with ember.no_grad():
        plain = enc(x, src_key_padding_mask=pad)
        with explain.capture_attention(enc) as rec:
            captured = enc(x, src_key_padding_mask=pad)
    np.testing.assert_array_equal(plain.numpy(), captured.numpy())
    assert len(rec.calls) == 2 and set(rec.maps) == set(maps)
    assert all("forward" not in layer.self_attn.__dict__ for layer in enc.layers)


@pytest.mark.oracle
def test_maps_match_torch_multihead_attention_weights():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    t_mha = torch.nn.MultiheadAttention(8, 2, batch_first=True).double().eval()
    e_mha = nn.MultiheadAttention(8, 2, batch_first=True).double()
    load_from_torch(e_mha, t_mha)
    x = np.random.default_rng(0).standard_normal((2, 4, 8))
    mask = np.triu(np.ones((4, 4), bool), 1)
    maps = explain.attention_maps(e_mha, *(ember.tensor(x),) * 3, attn_mask=ember.tensor(mask))
    tx = torch.tensor(x)
    _, t_w = t_mha(tx, tx, tx, attn_mask=torch.tensor(mask), average_attn_weights=False)
    np.testing.assert_allclose(maps[""].numpy(), t_w.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_capture_records_repeated_calls_and_selected_layers():
    dec_layer = nn.TransformerDecoderLayer(8, 2, 16, 0.0, batch_first=True)
    dec = nn.TransformerDecoder(dec_layer, 1).eval()
    mem = ember.randn(1, 5, 8)
    with ember.no_grad(), explain.capture_attention(dec, "layers.0.multihead_attn") as rec:
        for n in (1, 2, 3):  # step-by-step decoding runs each layer once per step
            dec(ember.randn(1, n, 8), mem)
    assert [p for p, _ in rec.calls] == ["layers.0.multihead_attn"] * 3
    assert tuple(rec.maps["layers.0.multihead_attn"].shape) == (1, 2, 3, 5)
    with pytest.raises(ValueError, match="no MultiheadAttention layer 'layers.0.attn' in "
                                         "TransformerDecoder; attention layers: "
                                         "'layers.0.self_attn', 'layers.0.multihead_attn'"):
        with explain.capture_attention(dec, ["layers.0.attn"]):
            pass
    with pytest.raises(ValueError, match="has no nn.MultiheadAttention layer"):
        explain.attention_maps(nn.Linear(2, 2), ember.randn(1, 2))
    assert explain.attention_layer_paths(dec) == ["layers.0.self_attn",
                                                  "layers.0.multihead_attn"]


def test_wrappers_are_removed_when_the_forward_pass_fails():
    enc = _encoder(1)
    with pytest.raises(ValueError):
        explain.attention_maps(enc, ember.randn(2, 3, 5))  # wrong feature size
    assert "forward" not in enc.layers[0].self_attn.__dict__
    assert enc.training


def _rollout_numpy(layers, fusion="mean", residual=True):
    out = None
    for a in layers:
        a = {"mean": a.mean(1), "max": a.max(1), "min": a.min(1)}[fusion] if a.ndim == 4 else a
        if residual:
            a = 0.5 * a + 0.5 * np.eye(a.shape[-1])
        a = a / a.sum(-1, keepdims=True)
        out = a if out is None else a @ out
    return out


@pytest.mark.parametrize("fusion", ["mean", "max", "min"])
@pytest.mark.parametrize("residual", [True, False])
def test_rollout_matches_a_numpy_computation(fusion, residual):
    enc = _encoder(3)
    maps = explain.attention_maps(enc, ember.randn(2, 5, 8))
    ours = explain.attention_rollout(maps, head_fusion=fusion, add_residual=residual)
    expected = _rollout_numpy([m.numpy().astype(np.float64) for m in maps.values()], fusion,
                              residual)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ours.sum(-1).numpy(), 1.0, rtol=1e-5)


def test_rollout_errors():
    a = ember.rand(1, 2, 3, 3)
    with pytest.raises(ValueError, match="head_fusion"):
        explain.attention_rollout([a], head_fusion="median")
    with pytest.raises(ValueError, match="self-attention"):
        explain.attention_rollout([ember.rand(1, 2, 3, 4)])
    with pytest.raises(ValueError, match="does not match"):
        explain.attention_rollout([a, ember.rand(1, 2, 4, 4)])
    with pytest.raises(ValueError, match="no attention weights"):
        explain.attention_rollout([])
