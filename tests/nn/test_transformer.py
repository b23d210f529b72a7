"""Transformer layers, stacks, the full model and PositionalEncoding against PyTorch."""

import math
import warnings

import numpy as np
import pytest

import ember
from ember import nn
from tests.nn.harness import check_module, torch
from tests.nn.test_attention import EWrap, TWrap, masks_for

pytestmark = pytest.mark.usefixtures("kernels")  # compiled and NumPy kernels

RNG = np.random.default_rng(99)
D, NH, FF, N, L, S = 16, 2, 32, 3, 5, 4


def randn(*shape):
    return RNG.standard_normal(shape)


def causal_np(n):
    return np.triu(np.full((n, n), -np.inf), 1)


def kpm_np(n, s):
    m = RNG.random((n, s)) < 0.3
    m[:, 0] = False
    return m


def pair(make, call, dtype, masks):
    """(ember factory, torch factory) of wrappers calling ``make(lib)`` via ``call``."""
    def fn_for(lib):
        def fn(m, *xs):
            return call(m, *xs, **masks_for(lib, dtype, **masks))
        return fn
    return (lambda: EWrap(make(ember), fn_for(ember)),
            lambda: TWrap(make(torch), fn_for(torch)))


def seq(n, batch_first, batched=True):
    if not batched:
        return randn(n, D)
    return randn(N, n, D) if batch_first else randn(n, N, D)


# ============================================================================ encoder
@pytest.mark.oracle
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_encoder_layer(norm_first, activation, batch_first):
    def make(lib):
        return lib.nn.TransformerEncoderLayer(D, NH, FF, dropout=0.0, activation=activation,
                                              batch_first=batch_first, norm_first=norm_first)
    masks = dict(src_mask=causal_np(L), src_key_padding_mask=kpm_np(N, L))
    e, t = pair(make, lambda m, x, **k: m(x, **k), np.float64, masks)
    check_module(e, t, [seq(L, batch_first)], dtype=np.float64)


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_encoder_layer_defaults_no_mask(dtype):
    def make(lib):
        return lib.nn.TransformerEncoderLayer(D, NH, dropout=0.0)  # dim_feedforward 2048
    e, t = pair(make, lambda m, x: m(x), dtype, {})
    check_module(e, t, [seq(L, False)], dtype=dtype)


@pytest.mark.oracle
def test_encoder_layer_callable_activation_bias_off_unbatched():
    def make(lib):
        return lib.nn.TransformerEncoderLayer(D, NH, FF, dropout=0.0, bias=False,
                                              activation=lib.nn.functional.silu,
                                              layer_norm_eps=1e-3)
    masks = dict(src_mask=RNG.random((L, L)) < 0.3)
    masks["src_mask"][:, 0] = False
    e, t = pair(make, lambda m, x, **k: m(x, **k), np.float64, masks)
    check_module(e, t, [seq(L, False, batched=False)], dtype=np.float64)


@pytest.mark.oracle
@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_stack_with_norm(norm_first):
    def make(lib):
        layer = lib.nn.TransformerEncoderLayer(D, NH, FF, dropout=0.0, norm_first=norm_first,
                                               batch_first=True)
        extra = {"enable_nested_tensor": False} if lib is torch else {}
        return lib.nn.TransformerEncoder(layer, 2, norm=lib.nn.LayerNorm(D), **extra)
    masks = dict(mask=causal_np(L), src_key_padding_mask=kpm_np(N, L))
    e, t = pair(make, lambda m, x, **k: m(x, is_causal=True, **k), np.float64, masks)
    check_module(e, t, [seq(L, True)], dtype=np.float64)


def test_encoder_clones_are_identical_and_independent():
    layer = nn.TransformerEncoderLayer(D, NH, FF)
    enc = nn.TransformerEncoder(layer, 3)
    sd = layer.state_dict()
    for i in range(3):
        for k, v in enc.layers[i].state_dict().items():
            np.testing.assert_array_equal(v.numpy(), sd[k].numpy())
    w0 = enc.layers[0].linear1.weight
    assert w0 is not enc.layers[1].linear1.weight and w0 is not layer.linear1.weight
    with ember.no_grad():
        w0.mul_(0.0)
    assert enc.layers[1].linear1.weight.abs().sum().item() > 0
    assert layer.linear1.weight.abs().sum().item() > 0
    assert enc.layers[2].self_attn.path == "layers.2.self_attn"
    assert len(list(enc.parameters())) == 3 * len(list(layer.parameters()))
    assert enc.layers[1].activation is layer.activation


# ============================================================================ decoder
@pytest.mark.oracle
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_decoder_layer(norm_first, batch_first):
    def make(lib):
        return lib.nn.TransformerDecoderLayer(D, NH, FF, dropout=0.0, activation="gelu",
                                              batch_first=batch_first, norm_first=norm_first)
    masks = dict(tgt_mask=causal_np(L), memory_mask=randn(L, S),
                 tgt_key_padding_mask=kpm_np(N, L), memory_key_padding_mask=kpm_np(N, S))
    e, t = pair(make, lambda m, x, mem, **k: m(x, mem, tgt_is_causal=True, **k), np.float64,
                masks)
    check_module(e, t, [seq(L, batch_first), seq(S, batch_first)], dtype=np.float64)


@pytest.mark.oracle
def test_decoder_stack_float32():
    def make(lib):
        layer = lib.nn.TransformerDecoderLayer(D, NH, FF, dropout=0.0)
        return lib.nn.TransformerDecoder(layer, 2, norm=lib.nn.LayerNorm(D))
    masks = dict(tgt_mask=causal_np(L), memory_key_padding_mask=kpm_np(N, S))
    e, t = pair(make, lambda m, x, mem, **k: m(x, mem, **k), np.float32, masks)
    check_module(e, t, [seq(L, False), seq(S, False)], dtype=np.float32)


# ============================================================================ full model
@pytest.mark.oracle
@pytest.mark.parametrize("layers,batch_first,norm_first", [(1, False, False), (2, True, True)])
def test_transformer_full(layers, batch_first, norm_first):
    def make(lib):
        return lib.nn.Transformer(d_model=D, nhead=NH, num_encoder_layers=layers,
                                  num_decoder_layers=layers, dim_feedforward=FF, dropout=0.0,
                                  batch_first=batch_first, norm_first=norm_first)
    masks = dict(tgt_mask=causal_np(L), src_key_padding_mask=kpm_np(N, S))
    e, t = pair(make, lambda m, src, tgt, **k: m(src, tgt, **k), np.float64, masks)
    with warnings.catch_warnings():  # torch warns about nested tensors when norm_first
        warnings.simplefilter("ignore")
        check_module(e, t, [seq(S, batch_first), seq(L, batch_first)], dtype=np.float64)


def test_transformer_init_and_structure():
    ember.manual_seed(0)
    m = nn.Transformer(d_model=32, nhead=4, num_encoder_layers=2, num_decoder_layers=1,
                       dim_feedforward=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = torch.nn.Transformer(d_model=32, nhead=4, num_encoder_layers=2,
                                 num_decoder_layers=1, dim_feedforward=64)
    e_sd = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    t_sd = {k: tuple(v.shape) for k, v in t.state_dict().items()}
    assert e_sd == t_sd
    assert "encoder.norm.weight" in e_sd and "decoder.norm.bias" in e_sd
    for name, p in m.named_parameters():
        if p.dim() > 1:  # xavier_uniform_: U(-b, b), b = sqrt(6 / (fan_in + fan_out))
            fan_out, fan_in = p.shape[0], p.shape[1]
            b = math.sqrt(6.0 / (fan_in + fan_out))
            a = np.abs(p.detach().numpy())
            assert a.max() <= b + 1e-7 and a.max() > 0.8 * b, name
    # the encoder layers were re-initialized separately: not identical any more
    w0 = m.encoder.layers[0].linear1.weight.detach().numpy()
    w1 = m.encoder.layers[1].linear1.weight.detach().numpy()
    assert not np.allclose(w0, w1)


def test_transformer_defaults():
    m = nn.Transformer(num_encoder_layers=1, num_decoder_layers=1)
    assert m.d_model == 512 and m.nhead == 8 and not m.batch_first
    layer = m.encoder.layers[0]
    assert layer.linear1.weight.shape == (2048, 512)
    assert layer.dropout.p == 0.1 and layer.norm1.eps == 1e-5 and not layer.norm_first
    assert m.decoder.layers[0].dropout3.p == 0.1


@pytest.mark.oracle
@pytest.mark.parametrize("sz", [0, 1, 5])
def test_generate_square_subsequent_mask(sz):
    e = nn.Transformer.generate_square_subsequent_mask(sz)
    t = torch.nn.Transformer.generate_square_subsequent_mask(sz)
    assert e.dtype == ember.float32
    np.testing.assert_array_equal(e.numpy(), t.numpy())
    assert nn.Transformer.generate_square_subsequent_mask(3, dtype=ember.float64).dtype == \
        ember.float64


def test_transformer_errors():
    m = nn.Transformer(d_model=D, nhead=NH, num_encoder_layers=1, num_decoder_layers=1,
                       dim_feedforward=FF)
    with pytest.raises(RuntimeError, match="batch number of src and tgt"):
        m(ember.randn(4, 2, D), ember.randn(5, 3, D))
    with pytest.raises(RuntimeError, match="feature number"):
        m(ember.randn(4, 2, D), ember.randn(5, 2, 8))
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        nn.TransformerEncoderLayer(D, NH, activation="tanh")
    layer = nn.TransformerEncoderLayer(D, NH, FF)
    with pytest.raises(ValueError, match=r"TransformerEncoderLayer: expected src of shape "
                                         r"\(L, N, 16\)"):
        layer(ember.randn(4, 2, 8))
    with pytest.raises(ValueError, match=r"embed_dim \(16\) must be divisible by num_heads "
                                         r"\(3\)"):
        nn.TransformerEncoderLayer(D, 3)


# ============================================================================ eval fast path
@pytest.mark.oracle
def test_encoder_eval_fast_path_with_padding():
    """PyTorch's eval fast path (no grad) zeros padded positions; compare the others."""
    torch.manual_seed(0)
    layer_t = torch.nn.TransformerEncoderLayer(D, NH, FF, batch_first=True)
    enc_t = torch.nn.TransformerEncoder(layer_t, 2).eval()
    enc_e = nn.TransformerEncoder(nn.TransformerEncoderLayer(D, NH, FF, batch_first=True),
                                  2).eval()
    enc_e.load_state_dict({k: v.numpy() for k, v in enc_t.state_dict().items()})
    x = RNG.standard_normal((N, L, D)).astype(np.float32)
    pad = np.zeros((N, L), bool)
    pad[0, 3:] = True
    pad[2, 4:] = True
    with torch.no_grad(), warnings.catch_warnings():  # nested tensors are "prototype"
        warnings.simplefilter("ignore")
        to = enc_t(torch.tensor(x), src_key_padding_mask=torch.tensor(pad)).numpy()
    with ember.no_grad():
        eo = enc_e(ember.tensor(x), src_key_padding_mask=ember.tensor(pad)).numpy()
    keep = ~pad
    np.testing.assert_allclose(eo[keep], to[keep], rtol=1e-4, atol=1e-5)
    assert np.all(to[pad] == 0) and np.all(np.isfinite(eo[pad])) and np.any(eo[pad] != 0)


# ============================================================================ causal LM
class _LM:
    """The same tiny causal language model in ember and in torch."""

    @staticmethod
    def make(lib, vocab=50, d=32, heads=4, ff=64, max_len=16):
        class LM(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.tok = lib.nn.Embedding(vocab, d)
                self.pos = lib.nn.Embedding(max_len, d)
                layer = lib.nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0,
                                                       batch_first=True)
                extra = {"enable_nested_tensor": False} if lib is torch else {}
                self.encoder = lib.nn.TransformerEncoder(layer, 2, **extra)
                self.head = lib.nn.Linear(d, vocab)

            def forward(self, idx, targets):
                T = idx.shape[1]
                x = self.tok(idx) + self.pos(lib.arange(T))
                mask = lib.nn.Transformer.generate_square_subsequent_mask(T)
                h = self.encoder(x, mask=mask, is_causal=True)
                logits = self.head(h)
                loss = lib.nn.functional.cross_entropy(logits.reshape(-1, vocab),
                                                       targets.reshape(-1))
                return logits, loss
        return LM()


@pytest.mark.oracle
def test_causal_lm_end_to_end():
    idx = RNG.integers(0, 50, (4, 12))
    tgt = RNG.integers(0, 50, (4, 12))
    check_module(lambda: _LM.make(ember), lambda: _LM.make(torch), [idx, tgt], dtype=np.float32)


def test_causal_lm_is_causal():
    """Changing a later token leaves earlier logits unchanged."""
    lm = _LM.make(ember).eval()
    idx = RNG.integers(0, 50, (2, 10))
    idx2 = idx.copy()
    idx2[:, 6] = (idx2[:, 6] + 1) % 50
    with ember.no_grad():
        a = lm(ember.tensor(idx), ember.tensor(idx))[0].numpy()
        b = lm(ember.tensor(idx2), ember.tensor(idx))[0].numpy()
    np.testing.assert_array_equal(a[:, :6], b[:, :6])
    assert not np.allclose(a[:, 6:], b[:, 6:])


# ============================================================================ positions
@pytest.mark.parametrize("d_model", [8, 7])
def test_positional_encoding_closed_form(d_model):
    pe = nn.PositionalEncoding(d_model, max_len=50, dropout=0.0)
    assert pe.pe.shape == (50, d_model) and pe.pe.dtype == ember.float32
    pos = np.arange(50)[:, None]
    i = np.arange(d_model)[None, :]
    angle = pos / 10000.0 ** ((i - i % 2) / d_model)
    ref = np.where(i % 2 == 0, np.sin(angle), np.cos(angle))
    np.testing.assert_allclose(pe.pe.numpy(), ref, rtol=1e-6, atol=1e-6)
    assert "pe" not in pe.state_dict()  # non-persistent
    x = randn(6, 2, d_model).astype(np.float32)
    out = pe(ember.tensor(x)).numpy()
    np.testing.assert_allclose(out, x + ref[:6, None, :], rtol=1e-5, atol=1e-6)
    pe_bf = nn.PositionalEncoding(d_model, max_len=50, dropout=0.0, batch_first=True)
    xb = randn(2, 6, d_model).astype(np.float32)
    np.testing.assert_allclose(pe_bf(ember.tensor(xb)).numpy(), xb + ref[None, :6],
                               rtol=1e-5, atol=1e-6)


def test_positional_encoding_dropout_double_and_errors():
    pe = nn.PositionalEncoding(4, max_len=8, dropout=0.5).double()
    assert pe.pe.dtype == ember.float64
    x = ember.zeros(8, 3, 4, dtype=ember.float64)
    out = pe(x).numpy()
    ref = np.broadcast_to(pe.pe.numpy()[:, None], out.shape)
    kept = out != 0
    np.testing.assert_allclose(out[kept], 2 * ref[kept], rtol=1e-12)
    pe.eval()
    np.testing.assert_allclose(pe(x).numpy(), ref, rtol=1e-12)
    with pytest.raises(ValueError, match="exceeds max_len=8"):
        pe(ember.zeros(9, 1, 4, dtype=ember.float64))
    with pytest.raises(ValueError, match=r"PositionalEncoding: expected input of shape"):
        pe(ember.zeros(3, 1, 5))


# ============================================================================ layer-norm fast path
@pytest.mark.oracle
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
@pytest.mark.parametrize("shape", [(3, 5, 8), (4, 6, 2, 3)])
def test_layer_norm_rows_fast_path_matches_torch(dtype, affine, shape):
    """LayerNorm over trailing dims (the row-wise fast path of ops.norm_affine)."""
    ns = shape[2:] if len(shape) == 4 else shape[-1:]
    x = randn(*shape).astype(dtype) * 3 + 1
    w = randn(*ns).astype(dtype) if affine != "none" else None
    b = randn(*ns).astype(dtype) if affine == "both" else None
    g = randn(*shape).astype(dtype)
    outs = []
    for lib in (ember, torch):
        xt = lib.tensor(x, requires_grad=True)
        wt = None if w is None else lib.tensor(w, requires_grad=True)
        bt = None if b is None else lib.tensor(b, requires_grad=True)
        y = lib.nn.functional.layer_norm(xt, ns, wt, bt, eps=1e-5)
        y.backward(lib.tensor(g))
        outs.append([y.detach().numpy(), xt.grad.numpy()]
                    + [t.grad.numpy() for t in (wt, bt) if t is not None])
    tol = dict(rtol=2e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-10)
    for e, t in zip(*outs):
        assert e.dtype == t.dtype
        np.testing.assert_allclose(e, t, **tol)


def test_layer_norm_rows_fast_path_double_backward_and_fallbacks():
    x = ember.tensor(randn(2, 3, 4), requires_grad=True)
    w = ember.tensor(randn(4), requires_grad=True)
    b = ember.tensor(randn(4), requires_grad=True)

    def f(x, w, b):
        return nn.functional.layer_norm(x, (4,), w, b)

    assert ember.autograd.gradcheck(f, (x, w, b))
    assert ember.autograd.gradgradcheck(f, (x, w, b))
    # a non-contiguous input takes the general path: same numbers
    xt = ember.tensor(randn(4, 3, 2)).permute(2, 1, 0)
    fast = nn.functional.layer_norm(xt.contiguous(), (4,), w, b).detach().numpy()
    slow = nn.functional.layer_norm(xt, (4,), w, b).detach().numpy()
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-12)


def test_layer_norm_saves_no_normalized_copy():
    """Only the input (and per-row statistics) are kept for backward, as in PyTorch."""
    x = ember.tensor(randn(4, 8), requires_grad=True)
    w = ember.tensor(np.ones(8), requires_grad=True)
    b = ember.tensor(np.zeros(8), requires_grad=True)
    y = nn.functional.layer_norm(x, (8,), w, b)
    ctx = y.grad_fn.ctx
    assert not hasattr(ctx, "xhat")
    assert ctx.saved[0] is x._data


@pytest.mark.oracle
@pytest.mark.parametrize("batch_first", [False, True])
def test_causal_lm_encoder_train_step_matches_torch(batch_first):
    """The benchmark's shape of model (causal float mask + is_causal, dropout 0): packed
    attention, detected causal mask and layer-norm fast path, float32, against PyTorch."""
    def make(lib):
        layer = lib.nn.TransformerEncoderLayer(D, NH, FF, dropout=0.0, batch_first=batch_first)
        return lib.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    masks = dict(mask=causal_np(L))
    e, t = pair(make, lambda m, x, **k: m(x, is_causal=True, **k), np.float32, masks)
    check_module(e, t, [seq(L, batch_first).astype(np.float32)], dtype=np.float32)
