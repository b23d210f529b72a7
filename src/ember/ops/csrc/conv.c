/* Convolution kernels: the unfold/fold (im2col, col2im), the rows scatter-add of embedding
 * gradients, a small direct convolution and an axis swap (used by ember.ops.conv and
 * .indexing); max pooling is in pool.c, the direct convolution for few taps in convdirect.c. */
#include "native.h"

/* ------------------------------------------------------------------ strided scatter-add */
/* dst[off + sum_i idx_i dst_strides_i] += src[flat idx] over the index grid `shape` (src
 * contiguous, strides in elements; elements of dst may be hit several times, in order). It is
 * the adjoint of unfolding an image into convolution columns (col2im): NumPy needs one call per
 * kernel offset for it, since an element receives from several offsets. */
#define MAXDIM 8
/* Both walk the grid as an odometer over its outer dims and, inside, a 2-D block of its last
 * two dims: a convolution's runs are short (one output row, e.g. 10 elements), and stepping the
 * odometer once per row cost more than the copy. GRID_WALK(BODY) runs BODY for each run, with
 * `at` the strided side's offset and `flat` the contiguous side's. */
#define GRID_WALK(BODY)                                                                      \
    Py_ssize_t idx[MAXDIM] = {0}, inner = shape[nd - 1], s = st[nd - 1], outer = 1;          \
    Py_ssize_t rows = nd > 1 ? shape[nd - 2] : 1, rs = nd > 1 ? st[nd - 2] : 0;               \
    int od = nd > 1 ? nd - 2 : 0; /* the odometer's dims */                                  \
    for (int i = 0; i < od; i++)                                                             \
        outer *= shape[i];                                                                   \
    Py_ssize_t base = 0, flat = 0;                                                           \
    for (Py_ssize_t o = 0; o < outer; o++) {                                                 \
        for (Py_ssize_t r = 0; r < rows; r++, flat += inner) {                               \
            Py_ssize_t at = base + r * rs;                                                   \
            BODY                                                                             \
        }                                                                                    \
        for (int i = od - 1; i >= 0; i--) { /* odometer over the outer dims */                \
            base += st[i];                                                                   \
            if (++idx[i] < shape[i])                                                         \
                break;                                                                       \
            base -= st[i] * shape[i];                                                        \
            idx[i] = 0;                                                                      \
        }                                                                                    \
    }

#define SCATTER_KERNEL(T, SUF)                                                               \
    static void scatter_add_##SUF(T *dst, const T *src, int nd, const Py_ssize_t *shape,     \
                                  const Py_ssize_t *st)                                      \
    {                                                                                        \
        GRID_WALK(T *d = dst + at; const T *sp = src + flat;                                 \
                  if (s == 1) for (Py_ssize_t j = 0; j < inner; j++) d[j] += sp[j];          \
                  else for (Py_ssize_t j = 0; j < inner; j++) d[j * s] += sp[j];)            \
    }

SCATTER_KERNEL(float, f)
SCATTER_KERNEL(double, d)

/* Its forward twin, the unfold: dst[flat idx] = src[off + sum_i idx_i strides_i] (dst
 * contiguous), for im2col's copy of an image into convolution columns. */
#define GATHER_KERNEL(T, SUF)                                                                \
    static void gather_##SUF(T *dst, const T *src, int nd, const Py_ssize_t *shape,          \
                             const Py_ssize_t *st)                                           \
    {                                                                                        \
        GRID_WALK(const T *sp = src + at; T *d = dst + flat;                                 \
                  if (s == 1) for (Py_ssize_t j = 0; j < inner; j++) d[j] = sp[j];           \
                  else for (Py_ssize_t j = 0; j < inner; j++) d[j] = sp[j * s];)             \
    }

GATHER_KERNEL(float, f)
GATHER_KERNEL(double, d)

static int read_dims(PyObject *seq, const char *what, Py_ssize_t *out, int *nd)
{
    PyObject *fast = PySequence_Fast(seq, "_native: expected a sequence of ints");
    if (!fast)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (n < 1 || n > MAXDIM || (*nd && n != *nd)) {
        Py_DECREF(fast);
        PyErr_Format(PyExc_ValueError, "_native: %s must have 1 to %d entries (as many as shape)",
                     what, MAXDIM);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        out[i] = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(fast, i));
        if (out[i] == -1 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return -1;
        }
    }
    *nd = (int)n;
    Py_DECREF(fast);
    return 0;
}

static PyObject *strided(PyObject *args, int gather)
{
    PyObject *o[2], *shp, *strd;
    Py_ssize_t off;
    if (!PyArg_ParseTuple(args, "OOOOn", &o[0], &o[1], &shp, &strd, &off))
        return NULL;
    Py_ssize_t shape[MAXDIM], st[MAXDIM];
    int nd = 0;
    if (read_dims(shp, "shape", shape, &nd) < 0 || read_dims(strd, "strides", st, &nd) < 0)
        return NULL;
    /* the strided side: dst of a scatter-add, src of a gather */
    char k = kind_of(o[0]);
    Py_ssize_t n_dst = k ? count_of(o[gather], k) : -1;
    if (n_dst < 0)
        return NULL;
    /* every index the grid can reach must lie inside dst */
    Py_ssize_t count = 1, lo = off, hi = off;
    for (int i = 0; i < nd; i++) {
        if (shape[i] < 0) {
            PyErr_SetString(PyExc_ValueError, "_native: negative shape");
            return NULL;
        }
        count *= shape[i];
        if (st[i] >= 0)
            hi += st[i] * (shape[i] - 1);
        else
            lo += st[i] * (shape[i] - 1);
    }
    if (count && (lo < 0 || hi >= n_dst)) {
        PyErr_Format(PyExc_IndexError, "_native: %s reaches [%zd, %zd] outside %s of %zd items",
                     gather ? "gather" : "scatter_add", lo, hi, gather ? "src" : "dst", n_dst);
        return NULL;
    }
    Held h = {.n = 0};
    static const char *const names[] = {"dst", "src"};
    Py_ssize_t counts[] = {gather ? count : n_dst, gather ? n_dst : count};
    void *p[2];
    if (get_all(&h, o, names, "wr", counts, 2, k, p) < 0)
        return NULL;
    if (count) {
        Py_BEGIN_ALLOW_THREADS
        if (gather && k == 'f')
            gather_f(p[0], (const float *)p[1] + off, nd, shape, st);
        else if (gather)
            gather_d(p[0], (const double *)p[1] + off, nd, shape, st);
        else if (k == 'f')
            scatter_add_f((float *)p[0] + off, p[1], nd, shape, st);
        else
            scatter_add_d((double *)p[0] + off, p[1], nd, shape, st);
        Py_END_ALLOW_THREADS
    }
    release_all(&h);
    Py_RETURN_NONE;
}

PyObject *py_scatter_add(PyObject *self, PyObject *args) { return strided(args, 0); }
PyObject *py_gather(PyObject *self, PyObject *args) { return strided(args, 1); }

/* ---------------------------------------------------------------------- rows scatter-add */
/* out[idx[i], :] += g[i, :] for i in order (a repeated index accumulates in order of
 * appearance, as the NumPy path's rank-by-rank adds do): an embedding's gradient. */
#define INDEX_ADD_KERNEL(T, SUF)                                                             \
    static void index_add_rows_##SUF(T *out, const int64_t *idx, const T *g, Py_ssize_t n,   \
                                     Py_ssize_t F)                                           \
    {                                                                                        \
        for (Py_ssize_t i = 0; i < n; i++) {                                                 \
            T *o = out + idx[i] * F;                                                         \
            const T *gr = g + i * F;                                                         \
            for (Py_ssize_t j = 0; j < F; j++)                                               \
                o[j] += gr[j];                                                               \
        }                                                                                    \
    }

INDEX_ADD_KERNEL(float, f)
INDEX_ADD_KERNEL(double, d)

PyObject *py_index_add_rows(PyObject *self, PyObject *args)
{
    PyObject *o[3];
    Py_ssize_t R, n, F;
    if (!PyArg_ParseTuple(args, "OOOnnn", &o[0], &o[1], &o[2], &R, &n, &F))
        return NULL;
    char k = kind_of(o[0]);
    if (!k)
        return NULL;
    Held h = {.n = 0};
    PyObject *arrs[] = {o[0], o[2]};
    static const char *const names[] = {"out", "grad"};
    Py_ssize_t counts[] = {R * F, n * F};
    void *p[2];
    if (get_all(&h, arrs, names, "wr", counts, 2, k, p) < 0)
        return NULL;
    const int64_t *idx = get_index_below(&h, o[1], "index", n, R);
    if (!idx) {
        release_all(&h);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    if (k == 'f')
        index_add_rows_f(p[0], idx, p[1], n, F);
    else
        index_add_rows_d(p[0], idx, p[1], n, F);
    Py_END_ALLOW_THREADS
    release_all(&h);
    Py_RETURN_NONE;
}

/* --------------------------------------------------------------- small direct convolution */
/* out[n, o, oy, ox] = b[o] + sum_{c, ky, kx} w[o, c, ky, kx] x[n, c, iy, ix] with
 * iy = oy sh - ph + ky dh, ix = ox sw - pw + kx dw (taps outside x are zero padding); 2-D
 * (1-D as H = 1), groups 1. Vectorized over the output channels: for small problems (a batch-1
 * inference) it skips the unfold copy, the GEMM call and the output transpose of the GEMM
 * path, whose fixed costs dominate there. */
#define CONV_MAXO 512
/* One output position: the OPB accumulators over the taps. CONV_POS makes one function per
 * block width (8, 16, 24, 32: a fixed-size array the compiler keeps in registers) and one for
 * any width (up to CONV_MAXO, in memory). */
#define CONV_POS(T, NAME, OPB_DECL, OPB)                                                     \
    static void NAME(const T *x, const T *wT, const T *bias, T *dst, const Py_ssize_t *d,    \
                     Py_ssize_t n, Py_ssize_t oy, Py_ssize_t ox, Py_ssize_t Op)              \
    {                                                                                        \
        Py_ssize_t C = d[1], H = d[2], W = d[3], O = d[4], kh = d[5], kw = d[6];             \
        T acc[OPB_DECL];                                                                     \
        (void)Op;                                                                            \
        for (Py_ssize_t o = 0; o < OPB; o++)                                                 \
            acc[o] = bias[o];                                                                \
        Py_ssize_t iy0 = oy * d[7] - d[9], ix0 = ox * d[8] - d[10];                          \
        for (Py_ssize_t c = 0; c < C; c++)                                                   \
            for (Py_ssize_t ky = 0; ky < kh; ky++) {                                         \
                Py_ssize_t iy = iy0 + ky * d[11];                                            \
                if (iy < 0 || iy >= H)                                                       \
                    continue;                                                                \
                const T *xr = x + ((n * C + c) * H + iy) * W;                                \
                const T *wr = wT + (c * kh + ky) * kw * OPB;                                 \
                for (Py_ssize_t kx = 0; kx < kw; kx++) {                                     \
                    Py_ssize_t ix = ix0 + kx * d[12];                                        \
                    if (ix < 0 || ix >= W)                                                   \
                        continue;                                                            \
                    T v = xr[ix];                                                            \
                    const T *wk = wr + kx * OPB;                                             \
                    for (Py_ssize_t o = 0; o < OPB; o++)                                     \
                        acc[o] += v * wk[o];                                                 \
                }                                                                            \
            }                                                                                \
        for (Py_ssize_t o = 0; o < O; o++)                                                   \
            dst[o * d[13] * d[14]] = acc[o];                                                 \
    }
/* Four horizontally adjacent positions whose taps all lie inside the row: four independent
 * accumulator sets, so the multiply-add chains overlap (one position's chain is latency-bound). */
#define CONV_POS4(T, NAME, OPB)                                                              \
    static void NAME(const T *x, const T *wT, const T *bias, T *dst, const Py_ssize_t *d,    \
                     Py_ssize_t n, Py_ssize_t oy, Py_ssize_t ox)                             \
    {                                                                                        \
        Py_ssize_t C = d[1], H = d[2], W = d[3], O = d[4], kh = d[5], kw = d[6];             \
        Py_ssize_t sw = d[8], dw = d[12];                                                    \
        T a0[OPB], a1[OPB], a2[OPB], a3[OPB];                                                \
        for (Py_ssize_t o = 0; o < OPB; o++)                                                 \
            a0[o] = a1[o] = a2[o] = a3[o] = bias[o];                                         \
        Py_ssize_t iy0 = oy * d[7] - d[9], ix0 = ox * sw - d[10];                            \
        for (Py_ssize_t c = 0; c < C; c++)                                                   \
            for (Py_ssize_t ky = 0; ky < kh; ky++) {                                         \
                Py_ssize_t iy = iy0 + ky * d[11];                                            \
                if (iy < 0 || iy >= H)                                                       \
                    continue;                                                                \
                const T *xr = x + ((n * C + c) * H + iy) * W + ix0;                          \
                const T *wr = wT + (c * kh + ky) * kw * OPB;                                 \
                for (Py_ssize_t kx = 0; kx < kw; kx++) {                                     \
                    const T *xk = xr + kx * dw, *wk = wr + kx * OPB;                         \
                    T v0 = xk[0], v1 = xk[sw], v2 = xk[2 * sw], v3 = xk[3 * sw];             \
                    for (Py_ssize_t o = 0; o < OPB; o++) {                                   \
                        a0[o] += v0 * wk[o];                                                 \
                        a1[o] += v1 * wk[o];                                                 \
                        a2[o] += v2 * wk[o];                                                 \
                        a3[o] += v3 * wk[o];                                                 \
                    }                                                                        \
                }                                                                            \
            }                                                                                \
        Py_ssize_t plane = d[13] * d[14];                                                    \
        for (Py_ssize_t o = 0; o < O; o++) {                                                 \
            dst[o * plane] = a0[o];                                                          \
            dst[o * plane + 1] = a1[o];                                                      \
            dst[o * plane + 2] = a2[o];                                                      \
            dst[o * plane + 3] = a3[o];                                                      \
        }                                                                                    \
    }
#define CONV_KERNEL(T, SUF)                                                                  \
    CONV_POS4(T, conv_four8_##SUF, 8)                                                        \
    CONV_POS4(T, conv_four16_##SUF, 16)                                                      \
    CONV_POS(T, conv_pos8_##SUF, 8, 8)                                                       \
    CONV_POS(T, conv_pos16_##SUF, 16, 16)                                                    \
    CONV_POS(T, conv_pos24_##SUF, 24, 24)                                                    \
    CONV_POS(T, conv_pos32_##SUF, 32, 32)                                                    \
    CONV_POS(T, conv_posn_##SUF, CONV_MAXO, Op)                                              \
    static int conv2d_small_##SUF(const T *x, const T *w, const T *b, T *out,                \
                                  const Py_ssize_t *d)                                       \
    {                                                                                        \
        Py_ssize_t N = d[0], C = d[1], O = d[4], kh = d[5], kw = d[6], Ho = d[13];          \
        Py_ssize_t Wo = d[14], K = C * kh * kw, Op = (O + 7) / 8 * 8;                       \
        T *wT = calloc((size_t)(K * Op + Op), sizeof(T)); /* (K, Op) then the bias */       \
        if (!wT)                                                                             \
            return 0;                                                                        \
        for (Py_ssize_t o = 0; o < O; o++)                                                   \
            for (Py_ssize_t k = 0; k < K; k++)                                               \
                wT[k * Op + o] = w[o * K + k];                                               \
        T *bias = wT + K * Op;                                                               \
        if (b)                                                                               \
            for (Py_ssize_t o = 0; o < O; o++)                                               \
                bias[o] = b[o];                                                              \
        for (Py_ssize_t n = 0; n < N; n++)                                                   \
            for (Py_ssize_t oy = 0; oy < Ho; oy++)                                           \
                for (Py_ssize_t ox = 0; ox < Wo; ox++) {                                     \
                    T *dst = out + (n * O * Ho + oy) * Wo + ox;                              \
                    Py_ssize_t lo = ox * d[8] - d[10];                                       \
                    if (Op <= 16 && ox + 3 < Wo && lo >= 0 &&                                \
                        lo + 3 * d[8] + (kw - 1) * d[12] < d[3]) { /* 4 inside positions */ \
                        if (Op == 8)                                                         \
                            conv_four8_##SUF(x, wT, bias, dst, d, n, oy, ox);                \
                        else                                                                 \
                            conv_four16_##SUF(x, wT, bias, dst, d, n, oy, ox);               \
                        ox += 3;                                                             \
                    } else if (Op == 8)                                                      \
                        conv_pos8_##SUF(x, wT, bias, dst, d, n, oy, ox, Op);                 \
                    else if (Op == 16)                                                       \
                        conv_pos16_##SUF(x, wT, bias, dst, d, n, oy, ox, Op);                \
                    else if (Op == 24)                                                       \
                        conv_pos24_##SUF(x, wT, bias, dst, d, n, oy, ox, Op);                \
                    else if (Op == 32)                                                       \
                        conv_pos32_##SUF(x, wT, bias, dst, d, n, oy, ox, Op);                \
                    else                                                                     \
                        conv_posn_##SUF(x, wT, bias, dst, d, n, oy, ox, Op);                 \
                }                                                                            \
        free(wT);                                                                            \
        return 1;                                                                            \
    }

CONV_KERNEL(float, f)
CONV_KERNEL(double, d)

/* The 15 sizes of a 2-D convolution (N, C, H, W, O, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo):
 * pads >= 0, the others >= 1. -1 with an exception set. */
int conv_dims(PyObject *dims, Py_ssize_t *d, const char *name)
{
    PyObject *fast = PySequence_Fast(dims, "_native: dims must be a sequence");
    if (!fast)
        return -1;
    int nd = (int)PySequence_Fast_GET_SIZE(fast);
    for (int i = 0; i < nd && i < 15; i++)
        d[i] = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(fast, i));
    Py_DECREF(fast);
    if (PyErr_Occurred())
        return -1;
    if (nd != 15) {
        PyErr_Format(PyExc_ValueError, "_native: %s takes 15 sizes", name);
        return -1;
    }
    for (int i = 0; i < 15; i++)
        if (d[i] < (i == 9 || i == 10 ? 0 : 1)) {
            PyErr_Format(PyExc_ValueError, "_native: %s: bad convolution sizes", name);
            return -1;
        }
    return 0;
}

PyObject *py_conv2d_small(PyObject *self, PyObject *args)
{
    PyObject *o[4], *dims;
    if (!PyArg_ParseTuple(args, "OOOOO", &o[0], &o[1], &o[2], &o[3], &dims))
        return NULL;
    Py_ssize_t d[15];
    if (conv_dims(dims, d, "conv2d_small") < 0)
        return NULL;
    if (d[4] > CONV_MAXO) {
        PyErr_Format(PyExc_ValueError, "_native: at most %d output channels", CONV_MAXO);
        return NULL;
    }
    char k = kind_of(o[0]);
    if (!k)
        return NULL;
    Held h = {.n = 0};
    static const char *const names[] = {"x", "weight", "bias", "out"};
    Py_ssize_t counts[] = {d[0] * d[1] * d[2] * d[3], d[4] * d[1] * d[5] * d[6], d[4],
                           d[0] * d[4] * d[13] * d[14]};
    void *p[4];
    if (get_all(&h, o, names, "rrRw", counts, 4, k, p) < 0)
        return NULL;
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = k == 'f' ? conv2d_small_f(p[0], p[1], p[2], p[3], d)
                  : conv2d_small_d(p[0], p[1], p[2], p[3], d);
    Py_END_ALLOW_THREADS
    release_all(&h);
    if (!ok)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* --------------------------------------------------------------------- swap the two first axes */
/* dst (B, A, S) from src (A, B, S), plus bias[a] when given: a convolution's GEMM result
 * (channels first) into the (N, O, *out) layout, and its gradient back. NumPy does it as a
 * strided copy that is slow for short rows. */
#define SWAP_KERNEL(T, SUF)                                                                  \
    static void swap01_##SUF(const T *src, T *dst, const T *bias, Py_ssize_t A,              \
                             Py_ssize_t B, Py_ssize_t S)                                     \
    {                                                                                        \
        for (Py_ssize_t b = 0; b < B; b++)                                                   \
            for (Py_ssize_t a = 0; a < A; a++) {                                             \
                const T *s = src + (a * B + b) * S;                                          \
                T *d = dst + (b * A + a) * S, k = bias ? bias[a] : (T)0;                     \
                if (bias)                                                                    \
                    for (Py_ssize_t j = 0; j < S; j++)                                       \
                        d[j] = s[j] + k;                                                     \
                else                                                                         \
                    for (Py_ssize_t j = 0; j < S; j++)                                       \
                        d[j] = s[j];                                                         \
            }                                                                                \
    }

SWAP_KERNEL(float, f)
SWAP_KERNEL(double, d)

PyObject *py_swap01(PyObject *self, PyObject *args)
{
    PyObject *o[3];
    Py_ssize_t A, B, S;
    if (!PyArg_ParseTuple(args, "OOOnnn", &o[0], &o[1], &o[2], &A, &B, &S))
        return NULL;
    char k = kind_of(o[0]);
    if (!k)
        return NULL;
    Held h = {.n = 0};
    static const char *const names[] = {"src", "dst", "bias"};
    Py_ssize_t counts[] = {A * B * S, A * B * S, A};
    void *p[3];
    if (get_all(&h, o, names, "rwR", counts, 3, k, p) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    if (k == 'f')
        swap01_f(p[0], p[1], p[2], A, B, S);
    else
        swap01_d(p[0], p[1], p[2], A, B, S);
    Py_END_ALLOW_THREADS
    release_all(&h);
    Py_RETURN_NONE;
}
