/* Convolution and pooling kernels: the unfold/fold (im2col, col2im), block max pooling, the
 * rows scatter-add of embedding gradients and a small direct convolution (used by
 * ember.ops.conv, .pool, .indexing). */
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

/* ------------------------------------------------------------------------ block max pool */
/* 2x2 windows, L at a time (GCC's vector extension): the two input rows' even and odd columns
 * are the windows' four candidates, taken in the scan order below with the same rule; returns
 * how many windows of the row it did (a multiple of L), the rest is left to the scalar loop. */
#if defined(__GNUC__) && !defined(__clang__)
typedef float pvf __attribute__((vector_size(32)));
typedef int32_t pvi __attribute__((vector_size(32)));
typedef double pvd __attribute__((vector_size(32)));
typedef int64_t pvl __attribute__((vector_size(32)));
#define POOL2_ROW(T, SUF, V, VI, L, EVEN, ODD)                                               \
    static Py_ssize_t pool2_row_##SUF(const T *row, T *o, uint8_t *at, Py_ssize_t W,         \
                                      Py_ssize_t Wo)                                         \
    {                                                                                        \
        const VI even = EVEN, odd = ODD;                                                     \
        Py_ssize_t j = 0;                                                                    \
        for (; j + L <= Wo; j += L) {                                                        \
            V u0, u1, v0, v1;                                                                \
            memcpy(&u0, row + 2 * j, sizeof u0);                                             \
            memcpy(&u1, row + 2 * j + L, sizeof u1);                                         \
            memcpy(&v0, row + W + 2 * j, sizeof v0);                                         \
            memcpy(&v1, row + W + 2 * j + L, sizeof v1);                                     \
            V cand[4] = {__builtin_shuffle(u0, u1, even), __builtin_shuffle(u0, u1, odd),    \
                         __builtin_shuffle(v0, v1, even), __builtin_shuffle(v0, v1, odd)};   \
            V best = cand[0];                                                                \
            VI arg = {0};                                                                    \
            for (int k = 1; k < 4; k++) { /* a later value wins when greater or NaN */       \
                V c = cand[k];                                                               \
                VI take = (c > best) | (c != c);                                             \
                best = (V)(((VI)c & take) | ((VI)best & ~take));                             \
                arg = (k & take) | (arg & ~take);                                            \
            }                                                                                \
            memcpy(o + j, &best, sizeof best);                                               \
            for (int u = 0; u < L; u++)                                                      \
                at[j + u] = (uint8_t)arg[u];                                                 \
        }                                                                                    \
        return j;                                                                            \
    }
POOL2_ROW(float, f, pvf, pvi, 8, ((pvi){0, 2, 4, 6, 8, 10, 12, 14}),
          ((pvi){1, 3, 5, 7, 9, 11, 13, 15}))
POOL2_ROW(double, d, pvd, pvl, 4, ((pvl){0, 2, 4, 6}), ((pvl){1, 3, 5, 7}))
#else
#define pool2_row_f(row, o, at, W, Wo) 0
#define pool2_row_d(row, o, at, W, Wo) 0
#endif

/* Max over non-overlapping kh x kw windows (stride = kernel, no padding) of each plane of x
 * (P planes of H x W), Ho x Wo windows from the top left. `arg` keeps each window's argmax as
 * its row-major offset in the window, chosen by PyTorch's scan: a later value wins when it is
 * greater or NaN (so the first maximum, or the last NaN). Backward puts g at the argmax and
 * zeros everywhere else. */
#define POOL_KERNELS(T, SUF)                                                                 \
    /* one row of windows; returns whether a NaN was seen (then the row is redone exactly) */ \
    static int pool_row_fast_##SUF(const T *row, T *o, uint8_t *at, Py_ssize_t W,           \
                                   Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t Wo)             \
    {                                                                                        \
        int nan = 0;                                                                         \
        for (Py_ssize_t j = 0; j < Wo; j++) {                                                \
            const T *win = row + j * kw;                                                     \
            T best = win[0];                                                                 \
            int a = 0;                                                                       \
            for (Py_ssize_t u = 0; u < kh; u++)                                              \
                for (Py_ssize_t v = 0; v < kw; v++) {                                        \
                    T val = win[u * W + v];                                                  \
                    nan |= val != val;                                                       \
                    int take = val > best; /* branch-free selects */                         \
                    best = take ? val : best;                                                \
                    a = take ? (int)(u * kw + v) : a;                                        \
                }                                                                            \
            o[j] = best;                                                                     \
            at[j] = (uint8_t)a;                                                              \
        }                                                                                    \
        return nan;                                                                          \
    }                                                                                        \
    static void pool_row_exact_##SUF(const T *row, T *o, uint8_t *at, Py_ssize_t W,         \
                                     Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t Wo)           \
    {                                                                                        \
        for (Py_ssize_t j = 0; j < Wo; j++) {                                                \
            const T *win = row + j * kw;                                                     \
            T best = win[0];                                                                 \
            int a = 0;                                                                       \
            for (Py_ssize_t u = 0; u < kh; u++)                                              \
                for (Py_ssize_t v = 0; v < kw; v++) {                                        \
                    T val = win[u * W + v];                                                  \
                    if (val > best || val != val) {                                          \
                        best = val;                                                          \
                        a = (int)(u * kw + v);                                               \
                    }                                                                        \
                }                                                                            \
            o[j] = best;                                                                     \
            at[j] = (uint8_t)a;                                                              \
        }                                                                                    \
    }                                                                                        \
    static void pool_fwd_##SUF(const T *x, T *out, uint8_t *arg, Py_ssize_t P, Py_ssize_t H,  \
                               Py_ssize_t W, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t Ho,     \
                               Py_ssize_t Wo)                                                 \
    {                                                                                        \
        for (Py_ssize_t p = 0; p < P; p++)                                                   \
            for (Py_ssize_t i = 0; i < Ho; i++) {                                            \
                const T *row = x + (p * H + i * kh) * W;                                     \
                T *o = out + (p * Ho + i) * Wo;                                              \
                uint8_t *at = arg + (p * Ho + i) * Wo;                                       \
                Py_ssize_t done = kh == 2 && kw == 2 ? pool2_row_##SUF(row, o, at, W, Wo) : 0;\
                if (pool_row_fast_##SUF(row + done * kw, o + done, at + done, W, kh, kw,     \
                                        Wo - done))                                          \
                    pool_row_exact_##SUF(row + done * kw, o + done, at + done, W, kh, kw,    \
                                         Wo - done);                                         \
            }                                                                                \
    }                                                                                        \
    static void pool_bwd_##SUF(const T *g, const uint8_t *arg, T *gx, Py_ssize_t P,          \
                               Py_ssize_t H, Py_ssize_t W, Py_ssize_t kh, Py_ssize_t kw,     \
                               Py_ssize_t Ho, Py_ssize_t Wo)                                 \
    {                                                                                        \
        memset(gx, 0, sizeof(T) * P * H * W);                                                \
        for (Py_ssize_t p = 0; p < P; p++)                                                   \
            for (Py_ssize_t i = 0; i < Ho; i++) {                                            \
                T *row = gx + (p * H + i * kh) * W;                                          \
                const T *gr = g + (p * Ho + i) * Wo;                                         \
                const uint8_t *a = arg + (p * Ho + i) * Wo;                                  \
                for (Py_ssize_t j = 0; j < Wo; j++)                                          \
                    row[(a[j] / kw) * W + j * kw + a[j] % kw] = gr[j];                       \
            }                                                                                \
    }

POOL_KERNELS(float, f)
POOL_KERNELS(double, d)

/* (P, H, W, kh, kw, Ho, Wo) with the window grid inside the plane and kh * kw <= 256 */
static int pool_dims(PyObject *args, int first, Py_ssize_t *d)
{
    for (int i = 0; i < 7; i++) {
        d[i] = PyLong_AsSsize_t(PyTuple_GET_ITEM(args, first + i));
        if (d[i] == -1 && PyErr_Occurred())
            return -1;
        if (d[i] < 0 || (i >= 3 && i <= 4 && d[i] < 1)) {
            PyErr_SetString(PyExc_ValueError, "_native: bad pooling sizes");
            return -1;
        }
    }
    if (d[3] * d[4] > 256 || d[5] * d[3] > d[1] || d[6] * d[4] > d[2]) {
        PyErr_SetString(PyExc_ValueError, "_native: the windows do not fit the planes");
        return -1;
    }
    return 0;
}

static PyObject *py_pool(PyObject *self, PyObject *args, int backward)
{
    if (PyTuple_GET_SIZE(args) != 10) {
        PyErr_SetString(PyExc_TypeError, "_native: pooling takes 10 arguments");
        return NULL;
    }
    Py_ssize_t d[7];
    if (pool_dims(args, 3, d) < 0)
        return NULL;
    PyObject *vals = PyTuple_GET_ITEM(args, 0), *arg = PyTuple_GET_ITEM(args, backward ? 1 : 2);
    PyObject *res = PyTuple_GET_ITEM(args, backward ? 2 : 1);
    char k = kind_of(vals);
    if (!k)
        return NULL;
    Py_ssize_t nin = d[0] * d[1] * d[2], nout = d[0] * d[5] * d[6];
    Held h = {.n = 0};
    void *pv = get(&h, vals, backward ? "grad" : "x", 0, k, backward ? nout : nin);
    void *pr = pv ? get(&h, res, backward ? "grad_x" : "out", 1, k, backward ? nin : nout) : NULL;
    Py_buffer *ab = &h.views[h.n];
    uint8_t *pa = NULL;
    if (pr && PyObject_GetBuffer(arg, ab, PyBUF_C_CONTIGUOUS | (backward ? 0 : PyBUF_WRITABLE))
                  == 0) {
        h.n++;
        if (ab->len != nout || ab->itemsize != 1)
            PyErr_Format(PyExc_ValueError, "_native: argmax must hold %zd uint8 items", nout);
        else
            pa = ab->buf;
    }
    if (!pa) {
        release_all(&h);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    if (backward && k == 'f')
        pool_bwd_f(pv, pa, pr, d[0], d[1], d[2], d[3], d[4], d[5], d[6]);
    else if (backward)
        pool_bwd_d(pv, pa, pr, d[0], d[1], d[2], d[3], d[4], d[5], d[6]);
    else if (k == 'f')
        pool_fwd_f(pv, pr, pa, d[0], d[1], d[2], d[3], d[4], d[5], d[6]);
    else
        pool_fwd_d(pv, pr, pa, d[0], d[1], d[2], d[3], d[4], d[5], d[6]);
    Py_END_ALLOW_THREADS
    release_all(&h);
    Py_RETURN_NONE;
}

PyObject *py_pool_fwd(PyObject *self, PyObject *args) { return py_pool(self, args, 0); }
PyObject *py_pool_bwd(PyObject *self, PyObject *args) { return py_pool(self, args, 1); }

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

PyObject *py_conv2d_small(PyObject *self, PyObject *args)
{
    PyObject *o[4], *dims;
    if (!PyArg_ParseTuple(args, "OOOOO", &o[0], &o[1], &o[2], &o[3], &dims))
        return NULL;
    Py_ssize_t d[15];
    int nd = 0;
    PyObject *fast = PySequence_Fast(dims, "_native: dims must be a sequence");
    if (!fast)
        return NULL;
    nd = (int)PySequence_Fast_GET_SIZE(fast);
    for (int i = 0; i < nd && i < 15; i++)
        d[i] = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(fast, i));
    Py_DECREF(fast);
    if (PyErr_Occurred())
        return NULL;
    if (nd != 15) {
        PyErr_SetString(PyExc_ValueError, "_native: conv2d_small takes 15 sizes");
        return NULL;
    }
    for (int i = 0; i < 15; i++)
        if (d[i] < (i == 9 || i == 10 ? 0 : 1)) {
            PyErr_SetString(PyExc_ValueError, "_native: bad convolution sizes");
            return NULL;
        }
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
