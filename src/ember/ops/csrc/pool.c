/* Block max pooling: windows that tile the plane (stride = kernel, no padding), with the
 * argmax of each window kept for backward (used by ember.ops.pool). */
#include "native.h"

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
    /* one row of windows. Fast (exact = 0): a NaN is not taken, only reported (then the   \
     * row is redone exactly), so the compares vectorize; exact: a NaN wins as well */      \
    static inline __attribute__((always_inline)) int pool_row_##SUF(                         \
        const T *row, T *o, uint8_t *at, Py_ssize_t W, Py_ssize_t kh, Py_ssize_t kw,         \
        Py_ssize_t Wo, const int exact)                                                      \
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
                    int take = val > best || (exact && val != val); /* branch-free */        \
                    best = take ? val : best;                                                \
                    a = take ? (int)(u * kw + v) : a;                                        \
                }                                                                            \
            o[j] = best;                                                                     \
            at[j] = (uint8_t)a;                                                              \
        }                                                                                    \
        return nan && !exact;                                                                \
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
                if (pool_row_##SUF(row + done * kw, o + done, at + done, W, kh, kw,          \
                                   Wo - done, 0))                                            \
                    pool_row_##SUF(row + done * kw, o + done, at + done, W, kh, kw,          \
                                   Wo - done, 1);                                            \
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
