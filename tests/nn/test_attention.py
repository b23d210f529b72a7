"""scaled_dot_product_attention and MultiheadAttention against PyTorch and closed forms."""

import math
import warnings

import numpy as np
import pytest

import ember
from ember import nn
from ember.nn import functional as F
from tests.nn.harness import check_module, torch
from tests.oracle import check

pytestmark = pytest.mark.usefixtures("kernels")  # compiled and NumPy kernels

TF = torch.nn.functional
RNG = np.random.default_rng(1234)


def randn(*shape, dtype=np.float64):
    return RNG.standard_normal(shape).astype(dtype)


# ============================================================================ SDPA
@pytest.mark.oracle
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ["plain", "bool", "float", "causal", "scale", "broadcast",
                                  "causal_rect", "bool_bcast", "3d", "2d"])
def test_sdpa_matches_torch(dtype, case):
    qs, ks, vs = (2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 7)
    kw, mask = {}, None
    if case == "bool":
        mask = RNG.random((4, 6)) < 0.7
        mask[:, 0] = True
    elif case == "float":
        mask = randn(2, 1, 4, 6, dtype=dtype)
    elif case == "causal":
        kw["is_causal"] = True
    elif case == "scale":
        kw["scale"] = 0.37
    elif case == "broadcast":
        ks, vs = (1, 3, 6, 5), (2, 1, 6, 7)
    elif case == "causal_rect":  # L > S: upper-left aligned
        qs, ks, vs = (2, 3, 7, 5), (2, 3, 4, 5), (2, 3, 4, 7)
        kw["is_causal"] = True
    elif case == "bool_bcast":
        mask = RNG.random((2, 1, 1, 6)) < 0.6
        mask[..., 1] = True
    elif case == "3d":
        qs, ks, vs = (3, 4, 5), (3, 6, 5), (3, 6, 7)
    elif case == "2d":
        qs, ks, vs = (4, 5), (6, 5), (6, 7)
        kw["is_causal"] = True
    arrays = [randn(*qs, dtype=dtype), randn(*ks, dtype=dtype), randn(*vs, dtype=dtype)]
    if mask is None:
        check(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **kw),
              lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, **kw), arrays)
    else:
        check(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m, **kw),
              lambda q, k, v, m: TF.scaled_dot_product_attention(q, k, v, attn_mask=m, **kw),
              arrays + [mask], grad=[0, 1, 2])


@pytest.mark.oracle
def test_sdpa_float_mask_gradient():
    arrays = [randn(2, 4, 5), randn(2, 6, 5), randn(2, 6, 3), randn(4, 6)]
    check(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
          lambda q, k, v, m: TF.scaled_dot_product_attention(q, k, v, attn_mask=m), arrays)


@pytest.mark.oracle
def test_sdpa_gqa():
    arrays = [randn(2, 4, 3, 5), randn(2, 2, 6, 5), randn(2, 2, 6, 7)]
    check(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, enable_gqa=True),
          lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, enable_gqa=True), arrays)


@pytest.mark.oracle
@pytest.mark.parametrize("kind", ["bool", "float"])
def test_sdpa_fully_masked_rows_are_zero_like_torch(kind):
    mask = RNG.random((4, 6)) < 0.6
    mask[:, 0] = True
    mask[2] = False  # query 2 may attend to nothing
    if kind == "float":
        mask = np.where(mask, 0.0, -np.inf)
    arrays = [randn(2, 4, 5), randn(2, 6, 5), randn(2, 6, 3), mask]
    out = check(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
                lambda q, k, v, m: TF.scaled_dot_product_attention(q, k, v, attn_mask=m),
                arrays, grad=[0, 1, 2])
    assert np.all(out[0].detach().numpy()[:, 2] == 0.0)


def test_sdpa_closed_form():
    q, k, v = randn(3, 4), randn(5, 4), randn(5, 2)
    s = q @ k.T / 2.0  # 1/sqrt(4)
    p = np.exp(s - s.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    out = F.scaled_dot_product_attention(ember.tensor(q), ember.tensor(k), ember.tensor(v))
    np.testing.assert_allclose(out.numpy(), p @ v, rtol=1e-12)


def test_sdpa_gradcheck_float64():
    q = ember.tensor(randn(2, 3, 4), requires_grad=True)
    k = ember.tensor(randn(2, 5, 4), requires_grad=True)
    v = ember.tensor(randn(2, 5, 3), requires_grad=True)
    m = ember.tensor(randn(3, 5), requires_grad=True)
    b = RNG.random((2, 3, 5)) < 0.7
    b[:, :, 0] = True
    bm = ember.tensor(b)
    assert ember.autograd.gradcheck(
        lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m), (q, k, v, m))
    assert ember.autograd.gradcheck(
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=bm), (q, k, v))
    assert ember.autograd.gradcheck(
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.7),
        (q, k, v))


def test_sdpa_gradgradcheck_float64():
    q = ember.tensor(randn(2, 3, 4), requires_grad=True)
    k = ember.tensor(randn(2, 5, 4), requires_grad=True)
    v = ember.tensor(randn(2, 5, 3), requires_grad=True)
    b = RNG.random((3, 5)) < 0.7
    b[:, 0] = True
    bm = ember.tensor(b)
    assert ember.autograd.gradgradcheck(
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=bm), (q, k, v))
    assert ember.autograd.gradgradcheck(
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), (q, k, v))


def test_sdpa_dropout_scales_kept_weights():
    q, k, v = randn(2, 2, 8, 4), randn(2, 2, 8, 4), np.eye(8)[None, None].repeat(2, 0)
    et = [ember.tensor(a) for a in (q, k, v)]
    ref = F.scaled_dot_product_attention(*et).numpy()  # with v = I: the weights themselves
    ember.manual_seed(3)
    out = F.scaled_dot_product_attention(*et, dropout_p=0.25).numpy()
    kept = out != 0
    assert 0.6 < kept.mean() < 0.9
    np.testing.assert_allclose(out[kept], ref[kept] / 0.75, rtol=1e-12)
    assert np.all(F.scaled_dot_product_attention(*et, dropout_p=1.0).numpy() == 0.0)
    # the gradient goes through the same kept weights
    qt = ember.tensor(q, requires_grad=True)
    ember.manual_seed(3)
    o = F.scaled_dot_product_attention(qt, et[1], et[2], dropout_p=0.25)
    o.sum().backward()
    assert qt.grad is not None and np.all(np.isfinite(qt.grad.numpy()))


def test_sdpa_errors():
    q, k, v = (ember.tensor(randn(2, 3, 4)), ember.tensor(randn(2, 5, 4)),
               ember.tensor(randn(2, 5, 3)))
    with pytest.raises(RuntimeError, match="is_causal"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=ember.ones(3, 5, dtype=ember.bool),
                                       is_causal=True)
    with pytest.raises(RuntimeError, match="same embedding size"):
        F.scaled_dot_product_attention(q, ember.tensor(randn(2, 5, 3)), v)
    with pytest.raises(RuntimeError, match="same sequence length"):
        F.scaled_dot_product_attention(q, k, ember.tensor(randn(2, 4, 3)))
    with pytest.raises(RuntimeError, match="bool or float"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=ember.ones(3, 5, dtype=ember.int64))
    with pytest.raises(RuntimeError, match=r"cannot be broadcast"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=ember.ones(3, 4, dtype=ember.bool))
    with pytest.raises(RuntimeError, match="same dtype"):
        F.scaled_dot_product_attention(q, k.float(), v)
    with pytest.raises(RuntimeError, match="enable_gqa"):
        F.scaled_dot_product_attention(ember.tensor(randn(1, 3, 2, 4)),
                                       ember.tensor(randn(1, 2, 2, 4)),
                                       ember.tensor(randn(1, 2, 2, 4)), enable_gqa=True)


# ============================================================================ MHA
class EWrap(nn.Module):
    """Calls the wrapped ember module through ``fn`` (to pass masks and keywords)."""

    def __init__(self, m, fn):
        super().__init__()
        self.m, self.fn = m, fn

    def forward(self, *xs):
        return self.fn(self.m, *xs)


class TWrap(torch.nn.Module):
    def __init__(self, m, fn):
        super().__init__()
        self.m, self.fn = m, fn

    def forward(self, *xs):
        with warnings.catch_warnings():  # e.g. torch's "mismatched mask types" deprecation
            warnings.simplefilter("ignore")
            return self.fn(self.m, *xs)


def masks_for(lib, dtype, **masks):
    """The masks (NumPy) as tensors of ``lib``; float masks get the compute dtype."""
    out = {}
    for name, m in masks.items():
        if m is None:
            continue
        m = np.asarray(m)
        if m.dtype.kind == "f":
            m = m.astype(dtype)
        out[name] = ember.tensor(m) if lib is ember else torch.tensor(m)
    return out


def check_mha(ctor, qkv, *, dtype=np.float64, self_attn=False, **call):
    """check_module for MultiheadAttention(**ctor) called on ``qkv`` with ``call`` kwargs
    (NumPy masks converted per framework)."""
    mask_names = ("attn_mask", "key_padding_mask")
    np_masks = {k: call.pop(k) for k in mask_names if k in call}

    def fn_for(lib):
        def fn(m, *xs):
            if self_attn:
                xs = (xs[0], xs[0], xs[0])
            return m(*xs, **masks_for(lib, dtype, **np_masks), **call)
        return fn

    return check_module(lambda: EWrap(nn.MultiheadAttention(**ctor), fn_for(ember)),
                        lambda: TWrap(torch.nn.MultiheadAttention(**ctor), fn_for(torch)),
                        qkv, dtype=dtype)


E, H, N, L, S = 8, 2, 3, 4, 5


def qkv_arrays(batch_first=False, kdim=E, vdim=E, batched=True):
    def shp(n, d):
        if not batched:
            return (n, d)
        return (N, n, d) if batch_first else (n, N, d)
    return [randn(*shp(L, E)), randn(*shp(S, kdim)), randn(*shp(S, vdim))]


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_first", [False, True])
def test_mha_basic(dtype, batch_first):
    check_mha(dict(embed_dim=E, num_heads=H, batch_first=batch_first),
              qkv_arrays(batch_first), dtype=dtype)


@pytest.mark.oracle
@pytest.mark.parametrize("batch_first", [False, True])
def test_mha_self_attention_fused_projection(batch_first):
    x = qkv_arrays(batch_first)[:1]
    check_mha(dict(embed_dim=E, num_heads=H, batch_first=batch_first), x, self_attn=True,
              dtype=np.float32)


@pytest.mark.oracle
def test_mha_key_is_value():
    q, k, _ = qkv_arrays()

    def fn(m, q, k):
        return m(q, k, k)
    check_module(lambda: EWrap(nn.MultiheadAttention(E, H), fn),
                 lambda: TWrap(torch.nn.MultiheadAttention(E, H), fn), [q, k],
                 dtype=np.float64)


@pytest.mark.oracle
@pytest.mark.parametrize("ctor", [dict(kdim=6, vdim=7), dict(bias=False),
                                  dict(add_bias_kv=True), dict(add_zero_attn=True),
                                  dict(add_bias_kv=True, add_zero_attn=True, kdim=3, vdim=5),
                                  dict(num_heads=1), dict(num_heads=8)])
def test_mha_variants(ctor):
    ctor = {"embed_dim": E, "num_heads": H, **ctor}
    check_mha(ctor, qkv_arrays(kdim=ctor.get("kdim", E), vdim=ctor.get("vdim", E)))


def _kpm(n=N, s=S):
    m = RNG.random((n, s)) < 0.3
    m[:, 0] = False
    return m


@pytest.mark.oracle
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("masks", ["kpm_bool", "kpm_float", "am2_bool", "am2_float",
                                   "am3_bool", "am3_float", "both_bool", "both_float",
                                   "mixed", "bias_kv_zero_attn"])
def test_mha_masks(batch_first, masks):
    ctor = dict(embed_dim=E, num_heads=H, batch_first=batch_first)
    kpm = _kpm()
    am2 = RNG.random((L, S)) < 0.3
    am2[:, 0] = False
    am3 = RNG.random((N * H, L, S)) < 0.3
    am3[..., 0] = False
    call = {
        "kpm_bool": dict(key_padding_mask=kpm),
        "kpm_float": dict(key_padding_mask=randn(N, S)),
        "am2_bool": dict(attn_mask=am2),
        "am2_float": dict(attn_mask=randn(L, S)),
        "am3_bool": dict(attn_mask=am3),
        "am3_float": dict(attn_mask=randn(N * H, L, S)),
        "both_bool": dict(attn_mask=am3, key_padding_mask=kpm),
        "both_float": dict(attn_mask=randn(L, S), key_padding_mask=randn(N, S)),
        "mixed": dict(attn_mask=randn(L, S), key_padding_mask=kpm),
        "bias_kv_zero_attn": dict(attn_mask=am2, key_padding_mask=kpm),
    }[masks]
    if masks == "bias_kv_zero_attn":
        ctor.update(add_bias_kv=True, add_zero_attn=True)
    check_mha(ctor, qkv_arrays(batch_first), **call)


@pytest.mark.oracle
@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("average", [True, False])
def test_mha_need_weights(need_weights, average):
    check_mha(dict(embed_dim=E, num_heads=H), qkv_arrays(), need_weights=need_weights,
              average_attn_weights=average, key_padding_mask=_kpm())


@pytest.mark.oracle
@pytest.mark.parametrize("call", [dict(), dict(average_attn_weights=False),
                                  dict(need_weights=False)])
def test_mha_unbatched(call):
    am3 = RNG.random((H, L, S)) < 0.3
    am3[..., 0] = False
    kpm = _kpm(1, S)[0]
    check_mha(dict(embed_dim=E, num_heads=H), qkv_arrays(batched=False), attn_mask=am3,
              key_padding_mask=kpm, **call)
    check_mha(dict(embed_dim=E, num_heads=H, batch_first=True), qkv_arrays(batched=False),
              **call)


def test_mha_weights_shapes():
    m = nn.MultiheadAttention(E, H, batch_first=True).double()
    q, k, v = (ember.tensor(a) for a in qkv_arrays(True))
    out, w = m(q, k, v)
    assert out.shape == (N, L, E) and w.shape == (N, L, S)
    np.testing.assert_allclose(w.detach().numpy().sum(-1), 1.0, rtol=1e-12)
    _, w = m(q, k, v, average_attn_weights=False)
    assert w.shape == (N, H, L, S)
    assert m(q, k, v, need_weights=False)[1] is None


@pytest.mark.oracle
def test_mha_fully_masked_rows_match_torch():
    """need_weights=True: NaN rows (plain softmax); need_weights=False: zeros (safe softmax)."""
    kpm = _kpm()
    kpm[1] = True  # batch element 1 cannot attend anywhere
    q, k, v = qkv_arrays()
    torch.manual_seed(0)
    tm = torch.nn.MultiheadAttention(E, H).double()
    em = nn.MultiheadAttention(E, H).double()
    em.load_state_dict({k_: t.detach().numpy() for k_, t in tm.state_dict().items()})
    for need in (True, False):
        to, tw = tm(*(torch.tensor(a) for a in (q, k, v)), key_padding_mask=torch.tensor(kpm),
                    need_weights=need)
        eo, ew = em(*(ember.tensor(a) for a in (q, k, v)), key_padding_mask=ember.tensor(kpm),
                    need_weights=need)
        np.testing.assert_allclose(eo.detach().numpy(), to.detach().numpy(), rtol=1e-9,
                                   atol=1e-12, equal_nan=True)
        assert np.isnan(eo.detach().numpy()[:, 1]).all() == need
        if need:
            np.testing.assert_allclose(ew.detach().numpy(), tw.detach().numpy(), rtol=1e-9,
                                       equal_nan=True)


@pytest.mark.oracle
def test_mha_init_matches_torch_distributions():
    ember.manual_seed(0)
    m = nn.MultiheadAttention(64, 4, add_bias_kv=True)
    t = torch.nn.MultiheadAttention(64, 4, add_bias_kv=True)
    e_sd, t_sd = m.state_dict(), t.state_dict()
    assert list(e_sd) == list(t_sd)
    bound = math.sqrt(6 / (64 + 192))  # xavier_uniform_ on (3E, E)
    w = m.in_proj_weight.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    np.testing.assert_allclose(w.std(), bound / math.sqrt(3), rtol=0.05)
    assert not m.in_proj_bias.detach().numpy().any()
    assert not m.out_proj.bias.detach().numpy().any()
    ow = m.out_proj.weight.detach().numpy()  # Linear default U(-1/8, 1/8)
    assert np.abs(ow).max() <= 1 / 8 and np.abs(ow).max() > 0.9 / 8
    assert m.bias_k.shape == (1, 1, 64)
    np.testing.assert_allclose(m.bias_k.detach().numpy().std(), math.sqrt(2 / 65), rtol=0.4)
    sep = nn.MultiheadAttention(64, 4, kdim=32, vdim=16, bias=False)
    assert {k: tuple(v.shape) for k, v in sep.state_dict().items()} == {
        "q_proj_weight": (64, 64), "k_proj_weight": (64, 32), "v_proj_weight": (64, 16),
        "out_proj.weight": (64, 64)}


def test_mha_dropout_on_weights():
    m = nn.MultiheadAttention(E, H, dropout=0.5).double()
    q, k, v = (ember.tensor(a) for a in qkv_arrays())
    _, w = m(q, k, v, average_attn_weights=False)
    w = w.detach().numpy()
    assert (w == 0).mean() > 0.3  # dropped weights
    m.eval()
    _, w = m(q, k, v, average_attn_weights=False)
    np.testing.assert_allclose(w.detach().numpy().sum(-1), 1.0, rtol=1e-12)


def test_mha_errors():
    with pytest.raises(ValueError, match=r"MultiheadAttention: embed_dim \(10\) must be "
                                         r"divisible by num_heads \(3\)"):
        nn.MultiheadAttention(10, 3)
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32), 1)
    mha = enc.layers[0].self_attn
    x = ember.randn(5, 12)
    with pytest.raises(ValueError, match=r"MultiheadAttention 'layers.0.self_attn': expected "
                                         r"query of shape \(L, N, 16\) or unbatched \(L, 16\), "
                                         r"got \(5, 12\)"):
        mha(x, x, x)
    m = nn.MultiheadAttention(E, H).double()
    q, k, v = (ember.tensor(a) for a in qkv_arrays())
    with pytest.raises(RuntimeError, match=r"2-D attn_mask is \(4, 4\), but should be "
                                           r"\(4, 5\)"):
        m(q, k, v, attn_mask=ember.zeros(4, 4))
    with pytest.raises(RuntimeError, match=r"3-D attn_mask is \(3, 4, 5\), but should be "
                                           r"\(6, 4, 5\)"):
        m(q, k, v, attn_mask=ember.zeros(3, 4, 5))
    with pytest.raises(ValueError, match=r"key_padding_mask of shape \(3, 5\)"):
        m(q, k, v, key_padding_mask=ember.zeros(5, 3, dtype=ember.bool))
    with pytest.raises(RuntimeError, match="is_causal"):
        m(q, k, v, is_causal=True)
    with pytest.raises(ValueError, match="batch size"):
        m(q, k[:, :2], v[:, :2])
    with pytest.raises(ValueError, match="same sequence length"):
        m(q, k, v[:4])
    with pytest.raises(TypeError, match="bool and floating-point attn_mask"):
        m(q, k, v, attn_mask=ember.zeros(4, 5, dtype=ember.int64))


@pytest.mark.oracle
def test_mha_is_causal_hint_uses_mask():
    mask = np.triu(np.full((L, L), -np.inf), 1)
    check_mha(dict(embed_dim=E, num_heads=H), qkv_arrays()[:1], self_attn=True,
              attn_mask=mask, is_causal=True, need_weights=False)


# ============================================================================ fast paths
def _split_heads(x, heads, batch_first):
    """q, k, v (N, H, L, D) from a packed (N, L, 3E) / (L, N, 3E) tensor, with plain ops."""
    n0, n1, e3 = x.shape
    d = e3 // (3 * heads)
    x = x.reshape(n0, n1, 3, heads, d)
    x = x.permute(2, 0, 3, 1, 4) if batch_first else x.permute(2, 1, 3, 0, 4)
    return x[0], x[1], x[2]


def _merge_heads(o, batch_first):
    n, h, length, d = o.shape
    if batch_first:
        return o.permute(0, 2, 1, 3).reshape(n, length, h * d)
    return o.permute(2, 0, 1, 3).reshape(length, n, h * d)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("case", ["plain", "causal", "bool", "float_grad", "weights",
                                  "dropout"])
def test_packed_attention_matches_split_heads(batch_first, case):
    """ops.packed_attention == fused_attention on the split heads (values and gradients)."""
    n, length, heads, d = 2, 5, 3, 4
    shape = (n, length, 3 * heads * d) if batch_first else (length, n, 3 * heads * d)
    x = randn(*shape)
    mask, kw = None, dict(scale=0.4)
    if case == "causal":
        kw["causal"] = True
    elif case == "bool":
        mask = RNG.random((n, 1, length, length)) < 0.6
        mask[..., 0] = True
        mask[0, 0, 1] = False  # a fully masked row
    elif case == "float_grad":
        mask = randn(1, heads, length, length)
    elif case == "weights":
        kw.update(need_weights=True)
    elif case == "dropout":
        kw.update(dropout_p=0.3, need_weights=True)
    results = []
    for packed in (True, False):
        xt = ember.tensor(x, requires_grad=True)
        mt = None
        if mask is not None:
            mt = ember.tensor(mask, requires_grad=mask.dtype.kind == "f")
        ember.manual_seed(7)
        if packed:
            res = ember.ops.packed_attention(xt, mt, num_heads=heads, batch_first=batch_first,
                                             **kw)
        else:
            q, k, v = _split_heads(xt, heads, batch_first)
            res = ember.ops.fused_attention(q, k, v, mt, **kw)
        out, w = res if isinstance(res, tuple) else (res, None)
        if not packed:
            out = _merge_heads(out, batch_first)
        loss = (out * ember.tensor(np.cos(np.arange(out.numel())).reshape(out.shape))).sum()
        if w is not None:
            loss = loss + (w * w).sum()
        loss.backward()
        results.append((out.detach().numpy(), xt.grad.numpy(),
                        None if mt is None or mt.grad is None else mt.grad.numpy()))
    (o1, g1, m1), (o2, g2, m2) = results
    np.testing.assert_allclose(o1, o2, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g1, g2, rtol=1e-10, atol=1e-12)
    if case == "float_grad":
        np.testing.assert_allclose(m1, m2, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("batch_first", [True, False])
def test_packed_attention_gradcheck_and_gradgradcheck(batch_first):
    shape = (2, 3, 12) if batch_first else (3, 2, 12)
    x = ember.tensor(randn(*shape), requires_grad=True)
    fm = ember.tensor(randn(3, 3), requires_grad=True)

    def f(x, m=None):
        return ember.ops.packed_attention(x, m, num_heads=2, scale=0.5,
                                          batch_first=batch_first)

    assert ember.autograd.gradcheck(f, (x, fm))
    assert ember.autograd.gradgradcheck(f, (x,))
    assert ember.autograd.gradgradcheck(
        lambda x: ember.ops.packed_attention(x, num_heads=2, scale=0.5, causal=True,
                                             batch_first=batch_first), (x,))


def test_mha_self_attention_double_backward_uses_packed_path():
    m = nn.MultiheadAttention(E, H, batch_first=True).double()
    x = ember.tensor(randn(2, L, E), requires_grad=True)
    mask = ember.tensor(np.triu(np.full((L, L), -np.inf), 1))
    assert ember.autograd.gradgradcheck(
        lambda x: m(x, x, x, attn_mask=mask, need_weights=False)[0], (x,))
    assert ember.autograd.gradgradcheck(lambda x: m(x, x, x)[0], (x,))


@pytest.mark.oracle
@pytest.mark.parametrize("kind", ["float", "bool"])
def test_mha_causal_mask_is_detected_and_matches_torch(kind):
    mask = np.triu(np.ones((L, L), bool), 1)
    if kind == "float":
        mask = np.where(mask, -np.inf, 0.0)
    m = nn.MultiheadAttention(E, H).double()
    x = ember.tensor(qkv_arrays()[0])
    assert m._mask_for(ember.tensor(mask), None, True, N, L, L, x.dtype) == (None, True)
    check_mha(dict(embed_dim=E, num_heads=H), qkv_arrays()[:1], self_attn=True,
              attn_mask=mask, need_weights=False)
    check_mha(dict(embed_dim=E, num_heads=H), qkv_arrays()[:1], self_attn=True,
              attn_mask=mask, need_weights=True)


def test_mha_mask_analysis_cache_follows_in_place_changes():
    torch.manual_seed(0)
    tm = torch.nn.MultiheadAttention(E, H).double()
    em = nn.MultiheadAttention(E, H).double()
    em.load_state_dict({k: ember.tensor(v.detach().numpy()) for k, v in
                        tm.state_dict().items()})
    x = qkv_arrays()[0]
    mask_np = np.triu(np.full((L, L), -np.inf), 1)
    emask, tmask = ember.tensor(mask_np.copy()), torch.tensor(mask_np.copy())
    ex, tx = ember.tensor(x), torch.tensor(x)
    for step in range(3):
        eo = em(ex, ex, ex, attn_mask=emask, need_weights=False)[0]
        to = tm(tx, tx, tx, attn_mask=tmask, need_weights=False)[0]
        np.testing.assert_allclose(eo.detach().numpy(), to.detach().numpy(), rtol=1e-9,
                                   atol=1e-12)
        if step == 0:  # an in-place change: no longer causal
            emask[0, 1] = 0.0
            tmask[0, 1] = 0.0
        elif step == 1:
            emask.add_(0.5)
            tmask.add_(0.5)


def test_mha_requires_grad_mask_is_not_cached_and_gets_gradient():
    m = nn.MultiheadAttention(E, H, batch_first=True).double()
    x = ember.tensor(randn(2, L, E))
    mask = ember.tensor(np.triu(np.full((L, L), -1e9), 1) * 0.0, requires_grad=True)
    out, _ = m(x, x, x, attn_mask=mask)
    out.sum().backward()
    assert mask.grad is not None and mask.grad.shape == (L, L)
    assert "_mask_cache" not in m.__dict__ or m.__dict__["_mask_cache"][0] is not mask


def test_mha_inference_no_grad_matches_training_path():
    m = nn.MultiheadAttention(E, H, batch_first=True).double()
    x = ember.tensor(randn(2, L, E))
    mask = ember.tensor(np.triu(np.full((L, L), -np.inf), 1))
    ref = m(x, x, x, attn_mask=mask)[0].detach().numpy()
    with ember.no_grad():
        out = m(x, x, x, attn_mask=mask)[0].numpy()
    np.testing.assert_array_equal(out, ref)
