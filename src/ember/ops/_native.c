/* ember.ops._native: optional compiled kernels for the hottest elementwise work.
 *
 * Every kernel here has a plain NumPy twin in the Python module that calls it (ember.ops.rnn,
 * ember.ops.optim_kernels, ...); that module documents the math, falls back to the NumPy path
 * when this extension is missing or switched off (EMBER_NATIVE=0, ember.ops.native.disabled()),
 * and its tests check the two paths against each other and against PyTorch.
 *
 * Why C: NumPy runs one pass over memory per ufunc. An LSTM cell step is a dozen such passes
 * over small arrays, and an Adam update five over each parameter. Here each is one pass, its
 * loops vectorized by the compiler; exp and tanh come vectorized from glibc's libmvec (declared
 * below with `omp declare simd`; only OpenMP's simd pragmas are used, not its threads).
 *
 * Threads: none. OpenMP worker threads spin after each parallel region and fought OpenBLAS's
 * threads for this machine's two cores (the MNIST-1D MLP step went from 1.3 to 8 ms), so each
 * kernel runs on the calling thread, with the GIL released.
 *
 * Rounding: built with -ffp-contract=off (no fused multiply-add), so kernels that do the same
 * float operations in the same order as their NumPy twin (the optimizer updates) give the same
 * bits; the recurrent cells use libmvec's exp/tanh, which may differ from NumPy's by an ulp.
 *
 * Arguments are C-contiguous float32 or float64 NumPy arrays (the buffer protocol checks
 * contiguity and writability; the dtype and sizes are checked here), and Python floats/ints.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#pragma omp declare simd notinbranch
extern float expf(float);
#pragma omp declare simd notinbranch
extern float tanhf(float);
#pragma omp declare simd notinbranch
extern double exp(double);
#pragma omp declare simd notinbranch
extern double tanh(double);

/* ------------------------------------------------------------------------ argument helpers */
/* The buffers one call holds (on the caller's stack: calls run concurrently without the GIL). */
typedef struct {
    Py_buffer views[10];
    int n;
} Held;

static void release_all(Held *h)
{
    for (int i = 0; i < h->n; i++)
        PyBuffer_Release(&h->views[i]);
    h->n = 0;
}

/* The data pointer of `obj` as an array of `count` items of the kind `kind` ('f' or 'd'). */
static void *get(Held *h, PyObject *obj, const char *name, int writable, char kind,
                 Py_ssize_t count)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    Py_buffer *v = &h->views[h->n];
    if (PyObject_GetBuffer(obj, v, flags) < 0)
        return NULL;
    h->n++;
    const char *f = v->format ? v->format : "B";
    if (*f == '<' || *f == '=' || *f == '@')
        f++;
    if (f[0] != kind || f[1] != 0) {
        PyErr_Format(PyExc_TypeError, "_native: %s has format '%s', expected '%c'", name,
                     v->format, kind);
        return NULL;
    }
    Py_ssize_t item = kind == 'f' ? 4 : 8;
    if (v->len != count * item) {
        PyErr_Format(PyExc_ValueError, "_native: %s holds %zd items, expected %zd", name,
                     v->len / item, count);
        return NULL;
    }
    return v->buf;
}


/* Fill `ptr[i]` with the data of `objs[i]` (NULL for None where `optional[i]`), checking each
 * against `counts[i]` items of `kind`; returns -1 with an error set (buffers released). */
static int get_all(Held *h, PyObject **objs, const char *const *names, const char *flags,
                   const Py_ssize_t *counts, int n, char kind, void **ptr)
{
    for (int i = 0; i < n; i++) {
        /* flags[i]: 'r' read, 'w' write, and upper case when None is allowed */
        int optional = flags[i] == 'R' || flags[i] == 'W';
        if (optional && objs[i] == Py_None) {
            ptr[i] = NULL;
            continue;
        }
        ptr[i] = get(h, objs[i], names[i], flags[i] == 'w' || flags[i] == 'W', kind, counts[i]);
        if (!ptr[i]) {
            release_all(h);
            return -1;
        }
    }
    return 0;
}

/* The int64 index array `obj` of `count` items (format 'l' or 'q'). */
static const int64_t *get_index(Held *h, PyObject *obj, const char *name, Py_ssize_t count)
{
    Py_buffer *v = &h->views[h->n];
    if (PyObject_GetBuffer(obj, v, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return NULL;
    h->n++;
    const char *f = v->format ? v->format : "B";
    if (*f == '<' || *f == '=' || *f == '@')
        f++;
    if (!((f[0] == 'l' || f[0] == 'q') && f[1] == 0 && v->itemsize == 8) ||
        v->len != count * 8) {
        PyErr_Format(PyExc_TypeError, "_native: %s must hold %zd int64 items", name, count);
        return NULL;
    }
    return v->buf;
}

/* get_index, then every index checked to lie in [0, limit) (an IndexError naming `name`). */
static const int64_t *get_index_below(Held *h, PyObject *obj, const char *name, Py_ssize_t count,
                                      Py_ssize_t limit)
{
    const int64_t *idx = get_index(h, obj, name, count);
    if (!idx)
        return NULL;
    for (Py_ssize_t i = 0; i < count; i++)
        if (idx[i] < 0 || idx[i] >= limit) {
            PyErr_Format(PyExc_IndexError, "_native: %s %lld out of [0, %zd)", name,
                         (long long)idx[i], limit);
            return NULL;
        }
    return idx;
}

/* The number of items of a float array of kind `kind`. */
static Py_ssize_t count_of(PyObject *obj, char kind)
{
    Py_buffer v;
    if (PyObject_GetBuffer(obj, &v, PyBUF_ANY_CONTIGUOUS) < 0)
        return -1;
    Py_ssize_t n = v.len / (kind == 'f' ? 4 : 8);
    PyBuffer_Release(&v);
    return n;
}

/* 'f' or 'd' from the first array's dtype (0 with an error set otherwise). */
static char kind_of(PyObject *obj)
{
    Py_buffer v;
    if (PyObject_GetBuffer(obj, &v, PyBUF_FORMAT | PyBUF_ANY_CONTIGUOUS) < 0)
        return 0;
    const char *f = v.format ? v.format : "B";
    if (*f == '<' || *f == '=' || *f == '@')
        f++;
    char k = (f[0] == 'f' || f[0] == 'd') && f[1] == 0 ? f[0] : 0;
    PyBuffer_Release(&v);
    if (!k)
        PyErr_SetString(PyExc_TypeError, "_native: expected a float32 or float64 array");
    return k;
}

/* ------------------------------------------------------------------------------ LSTM cell */
/* One time step for `rows` rows (batch) of hidden size H. mm = h W_hh^T and x (the input
 * projection, b_ih included) are in PyTorch's gate order i, f, g, o, b = b_hh (or NULL);
 * the activations are saved in the order i, f, o, g (the sigmoid gates side by side):
 *   forward:  v = mm + x + b;  i, f, o = 1/(1+exp(-v));  g = tanh(v);
 *             c' = f c + i g,  t = tanh(c'),  out = o t
 *   backward: d = dc + dm o (1 - t^2);  dpre (public order i, f, g, o) =
 *             [d i(1-i) g, d f(1-f) c, d (1-g^2) i, dm o(1-o) t];  dc <- d f
 * c and c' may be the same array (inference updates c in place). */
#define LSTM_KERNELS(T, SUF, EXP, TANH)                                                      \
    static void lstm_fwd_##SUF(const T *mm, const T *x, const T *b, const T *c, T *acts,     \
                               T *cn, T *tc, T *out, Py_ssize_t rows, Py_ssize_t H)          \
    {                                                                                        \
        for (Py_ssize_t r = 0; r < rows; r++) {                                              \
            const T *m = mm + r * 4 * H, *xr = x + r * 4 * H, *cr = c + r * H;               \
            T *a = acts + r * 4 * H, *cnr = cn + r * H, *tr = tc + r * H, *o = out + r * H; \
            /* pre-activations into a, in the saved order i, f, o, g */                      \
            static const int src[4] = {0, 1, 3, 2};                                          \
            for (int q = 0; q < 4; q++) {                                                    \
                const T *mq = m + src[q] * H, *xq = xr + src[q] * H;                         \
                T *aq = a + q * H;                                                           \
                if (b)                                                                       \
                    for (Py_ssize_t j = 0; j < H; j++)                                       \
                        aq[j] = mq[j] + xq[j] + b[src[q] * H + j];                           \
                else                                                                         \
                    for (Py_ssize_t j = 0; j < H; j++)                                       \
                        aq[j] = mq[j] + xq[j];                                               \
            }                                                                                \
            _Pragma("omp simd")                                                              \
            for (Py_ssize_t j = 0; j < 3 * H; j++)                                           \
                a[j] = (T)1 / ((T)1 + EXP(-a[j]));                                           \
            _Pragma("omp simd")                                                              \
            for (Py_ssize_t j = 0; j < H; j++) {                                             \
                T g = TANH(a[3 * H + j]);                                                    \
                a[3 * H + j] = g;                                                            \
                T cv = a[H + j] * cr[j] + a[j] * g;                                          \
                cnr[j] = cv;                                                                 \
                T t = TANH(cv);                                                              \
                tr[j] = t;                                                                   \
                o[j] = a[2 * H + j] * t;                                                     \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
    static void lstm_bwd_##SUF(const T *dm, T *dc, const T *acts, const T *c, const T *tc,   \
                               T *dpre, Py_ssize_t rows, Py_ssize_t H)                       \
    {                                                                                        \
        for (Py_ssize_t r = 0; r < rows; r++) {                                              \
            const T *a = acts + r * 4 * H, *cr = c + r * H, *tr = tc + r * H;               \
            const T *dmr = dm + r * H;                                                       \
            T *dcr = dc + r * H, *p = dpre + r * 4 * H;                                      \
            _Pragma("omp simd")                                                              \
            for (Py_ssize_t j = 0; j < H; j++) {                                             \
                T i = a[j], f = a[H + j], o = a[2 * H + j], g = a[3 * H + j], t = tr[j];     \
                T d = dcr[j] + dmr[j] * (((T)1 - t * t) * o);                                \
                p[j] = d * (((T)1 - i) * i * g);                                             \
                p[H + j] = d * (((T)1 - f) * f * cr[j]);                                     \
                p[2 * H + j] = d * (((T)1 - g * g) * i);                                     \
                p[3 * H + j] = dmr[j] * (((T)1 - o) * o * t);                                \
                dcr[j] = d * f;                                                              \
            }                                                                                \
        }                                                                                    \
    }

LSTM_KERNELS(float, f, expf, tanhf)
LSTM_KERNELS(double, d, exp, tanh)

static PyObject *py_lstm_fwd(PyObject *self, PyObject *args)
{
    PyObject *o[8];
    Py_ssize_t rows, H;
    if (!PyArg_ParseTuple(args, "OOOOOOOOnn", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6],
                          &o[7], &rows, &H))
        return NULL;
    char k = kind_of(o[0]);
    if (!k)
        return NULL;
    Held h = {.n = 0};
    static const char *const names[] = {"mm", "x", "bias", "c", "acts", "c_new", "tanh_c",
                                        "out"};
    Py_ssize_t counts[] = {rows * 4 * H, rows * 4 * H, 4 * H, rows * H, rows * 4 * H,
                           rows * H, rows * H, rows * H};
    void *p[8];
    if (get_all(&h, o, names, "rrRrwwww", counts, 8, k, p) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    if (k == 'f')
        lstm_fwd_f(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], rows, H);
    else
        lstm_fwd_d(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], rows, H);
    Py_END_ALLOW_THREADS
    release_all(&h);
    Py_RETURN_NONE;
}

static PyObject *py_lstm_bwd(PyObject *self, PyObject *args)
{
    PyObject *o[6];
    Py_ssize_t rows, H;
    if (!PyArg_ParseTuple(args, "OOOOOOnn", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &rows,
                          &H))
        return NULL;
    char k = kind_of(o[0]);
    if (!k)
        return NULL;
    Held h = {.n = 0};
    static const char *names[] = {"dm", "dc", "acts", "c", "tanh_c", "dpre"};
    static const int writable[] = {0, 1, 0, 0, 0, 1};
    void *p[6];
    Py_ssize_t sizes[] = {H, H, 4 * H, H, H, 4 * H};
    for (int i = 0; i < 6; i++)
        if (!(p[i] = get(&h, o[i], names[i], writable[i], k, rows * sizes[i]))) {
            release_all(&h);
            return NULL;
        }
    Py_BEGIN_ALLOW_THREADS
    if (k == 'f')
        lstm_bwd_f(p[0], p[1], p[2], p[3], p[4], p[5], rows, H);
    else
        lstm_bwd_d(p[0], p[1], p[2], p[3], p[4], p[5], rows, H);
    Py_END_ALLOW_THREADS
    release_all(&h);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------------ optimizers */
/* The scalars arrive precomputed in double by the Python caller and are rounded to T here, as
 * NumPy rounds a Python float meeting a float32 array; the operations follow the order of the
 * NumPy path in optim_kernels.py, which follows PyTorch's single-tensor implementation. */

/* The optimizers work through the parameter in blocks small enough to stay in L1 cache, with
 * each option's branch taken once per block, so that every inner loop is a plain vectorizable
 * pass. First the effective gradient of a block: g = (maximize ? -grad : grad) + wd p, in the
 * NumPy path's order (wd p first). */
#define BLOCK 512
#define EFFECTIVE_GRAD(T)                                                                    \
    if (wd != 0 && maximize)                                                                 \
        for (Py_ssize_t j = 0; j < nb; j++)                                                  \
            g[j] = pp[j] * (T)wd - gr[j];                                                    \
    else if (wd != 0)                                                                        \
        for (Py_ssize_t j = 0; j < nb; j++)                                                  \
            g[j] = pp[j] * (T)wd + gr[j];                                                    \
    else if (maximize)                                                                       \
        for (Py_ssize_t j = 0; j < nb; j++)                                                  \
            g[j] = -gr[j];                                                                   \
    else                                                                                     \
        for (Py_ssize_t j = 0; j < nb; j++)                                                  \
            g[j] = gr[j];

#define BLOCKS(T)                                                                            \
    T g[BLOCK];                                                                              \
    for (Py_ssize_t i0 = 0; i0 < n; i0 += BLOCK) {                                           \
        Py_ssize_t nb = n - i0 < BLOCK ? n - i0 : BLOCK;                                     \
        T *pp = p + i0;                                                                      \
        const T *gr = grad + i0;

#define OPT_KERNELS(T, SUF, SQRT)                                                                  \
    static void adam_##SUF(T *p, const T *grad, T *m, T *v, T *vmax, Py_ssize_t n,           \
                           double decay, double wd, int maximize, double w1, double w1c,     \
                           double beta2, double beta2c, double bc2_sqrt, double eps,         \
                           double neg_step)                                                  \
    {                                                                                        \
        const T tw1 = (T)w1, tw1c = (T)w1c, tb2 = (T)beta2, tb2c = (T)beta2c;                \
        const T tbc = (T)bc2_sqrt, teps = (T)eps, tstep = (T)neg_step, tdecay = (T)decay;   \
        BLOCKS(T)                                                                            \
        T *mm = m + i0, *vv = v + i0, *vm = vmax ? vmax + i0 : NULL;                         \
        if (decay != 1)                                                                      \
            for (Py_ssize_t j = 0; j < nb; j++)                                              \
                pp[j] = pp[j] * tdecay;                                                      \
        EFFECTIVE_GRAD(T)                                                                    \
        if (w1 < 0.5) /* lerp(m, g, w1), in PyTorch's two forms */                           \
            for (Py_ssize_t j = 0; j < nb; j++)                                              \
                mm[j] = mm[j] + (g[j] - mm[j]) * tw1;                                        \
        else                                                                                 \
            for (Py_ssize_t j = 0; j < nb; j++)                                              \
                mm[j] = g[j] - (g[j] - mm[j]) * tw1c;                                        \
        for (Py_ssize_t j = 0; j < nb; j++)                                                  \
            vv[j] = vv[j] * tb2 + g[j] * g[j] * tb2c;                                        \
        if (vm) {                                                                            \
            for (Py_ssize_t j = 0; j < nb; j++)                                              \
                vm[j] = vm[j] > vv[j] ? vm[j] : vv[j];                                       \
            vv = vm;                                                                         \
        }                                                                                    \
        for (Py_ssize_t j = 0; j < nb; j++)                                                  \
            pp[j] = pp[j] + mm[j] / (SQRT(vv[j]) / tbc + teps) * tstep;                      \
        }                                                                                    \
    }                                                                                        \
    static void sgd_##SUF(T *p, const T *grad, T *buf, Py_ssize_t n, double lr, double wd,   \
                          int maximize, double momentum, double damp_c, int nesterov,        \
                          int first)                                                         \
    {                                                                                        \
        const T tlr = (T)lr, tmom = (T)momentum, tdamp = (T)damp_c;                          \
        BLOCKS(T)                                                                            \
        EFFECTIVE_GRAD(T)                                                                    \
        if (buf) {                                                                           \
            T *b = buf + i0;                                                                 \
            if (first)                                                                       \
                for (Py_ssize_t j = 0; j < nb; j++)                                          \
                    b[j] = g[j];                                                             \
            else                                                                             \
                for (Py_ssize_t j = 0; j < nb; j++)                                          \
                    b[j] = b[j] * tmom + g[j] * tdamp;                                       \
            if (nesterov)                                                                    \
                for (Py_ssize_t j = 0; j < nb; j++)                                          \
                    g[j] = b[j] * tmom + g[j];                                               \
            else                                                                             \
                for (Py_ssize_t j = 0; j < nb; j++)                                          \
                    g[j] = b[j];                                                             \
        }                                                                                    \
        for (Py_ssize_t j = 0; j < nb; j++)                                                  \
            pp[j] = pp[j] - g[j] * tlr;                                                      \
        }                                                                                    \
    }

OPT_KERNELS(float, f, sqrtf)
OPT_KERNELS(double, d, sqrt)

static PyObject *py_adam(PyObject *self, PyObject *args)
{
    PyObject *o[5];
    double decay, wd, w1, w1c, beta2, beta2c, bc2_sqrt, eps, neg_step;
    int maximize;
    if (!PyArg_ParseTuple(args, "OOOOOddpddddddd", &o[0], &o[1], &o[2], &o[3], &o[4], &decay,
                          &wd, &maximize, &w1, &w1c, &beta2, &beta2c, &bc2_sqrt, &eps,
                          &neg_step))
        return NULL;
    char k = kind_of(o[0]);
    if (!k)
        return NULL;
    Held h = {.n = 0};
    Py_ssize_t n = count_of(o[0], k);
    if (n < 0)
        return NULL;
    static const char *names[] = {"param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
    void *p[5] = {NULL, NULL, NULL, NULL, NULL};
    for (int i = 0; i < 5; i++)
        if (o[i] != Py_None && !(p[i] = get(&h, o[i], names[i], i != 1, k, n))) {
            release_all(&h);
            return NULL;
        }
    Py_BEGIN_ALLOW_THREADS
    if (k == 'f')
        adam_f(p[0], p[1], p[2], p[3], p[4], n, decay, wd, maximize, w1, w1c, beta2, beta2c,
               bc2_sqrt, eps, neg_step);
    else
        adam_d(p[0], p[1], p[2], p[3], p[4], n, decay, wd, maximize, w1, w1c, beta2, beta2c,
               bc2_sqrt, eps, neg_step);
    Py_END_ALLOW_THREADS
    release_all(&h);
    Py_RETURN_NONE;
}

static PyObject *py_sgd(PyObject *self, PyObject *args)
{
    PyObject *o[3];
    double lr, wd, momentum, damp_c;
    int maximize, nesterov, first;
    if (!PyArg_ParseTuple(args, "OOOddpddpp", &o[0], &o[1], &o[2], &lr, &wd, &maximize,
                          &momentum, &damp_c, &nesterov, &first))
        return NULL;
    char k = kind_of(o[0]);
    if (!k)
        return NULL;
    Held h = {.n = 0};
    Py_ssize_t n = count_of(o[0], k);
    if (n < 0)
        return NULL;
    static const char *names[] = {"param", "grad", "momentum_buffer"};
    void *p[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3; i++)
        if (o[i] != Py_None && !(p[i] = get(&h, o[i], names[i], i != 1, k, n))) {
            release_all(&h);
            return NULL;
        }
    Py_BEGIN_ALLOW_THREADS
    if (k == 'f')
        sgd_f(p[0], p[1], p[2], n, lr, wd, maximize, momentum, damp_c, nesterov, first);
    else
        sgd_d(p[0], p[1], p[2], n, lr, wd, maximize, momentum, damp_c, nesterov, first);
    Py_END_ALLOW_THREADS
    release_all(&h);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------- softmax rows */
/* Cross-entropy over the rows of x (N, C) with class targets t: the softmax p and each row's
 * loss log(sum exp(x - m)) - (x_t - m), m the row max. Returns 0 if some row is not finite
 * (the caller then takes the NumPy path, which handles inf and NaN as PyTorch does). */
#pragma omp declare simd notinbranch
extern float logf(float);
#define XENT_KERNELS(T, SUF, EXP, LOG)                                                       \
    static int xent_fwd_##SUF(const T *x, const int64_t *t, T *p, T *loss, Py_ssize_t N,     \
                              Py_ssize_t C)                                                  \
    {                                                                                        \
        for (Py_ssize_t r = 0; r < N; r++) {                                                 \
            const T *xr = x + r * C;                                                         \
            T *pr = p + r * C, m = xr[0], total = 0;                                         \
            _Pragma("omp simd reduction(max:m)")                                             \
            for (Py_ssize_t j = 1; j < C; j++)                                               \
                m = xr[j] > m ? xr[j] : m;                                                   \
            _Pragma("omp simd reduction(+:total)")                                           \
            for (Py_ssize_t j = 0; j < C; j++) {                                             \
                T e = EXP(xr[j] - m);                                                        \
                pr[j] = e;                                                                   \
                total += e;                                                                  \
            }                                                                                \
            T logz = LOG(total);                                                             \
            if (!isfinite(m) || !isfinite(logz))                                             \
                return 0;                                                                    \
            loss[r] = logz - (xr[t[r]] - m);                                                 \
            T inv = (T)1 / total;                                                            \
            for (Py_ssize_t j = 0; j < C; j++)                                               \
                pr[j] = pr[j] * inv;                                                         \
        }                                                                                    \
        return 1;                                                                            \
    }                                                                                        \
    /* its gradient for a scalar upstream factor c: out = c p, minus c at the target */      \
    static void xent_bwd_##SUF(const T *p, const int64_t *t, T c, T *out, Py_ssize_t N,      \
                               Py_ssize_t C)                                                 \
    {                                                                                        \
        for (Py_ssize_t r = 0; r < N; r++) {                                                 \
            const T *pr = p + r * C;                                                         \
            T *o = out + r * C;                                                              \
            for (Py_ssize_t j = 0; j < C; j++)                                               \
                o[j] = pr[j] * c;                                                            \
            o[t[r]] -= c;                                                                    \
        }                                                                                    \
    }                                                                                        \
    /* attention weights in place: s <- softmax(s scale + mask[r % L]) over each row of S,   \
     * keys after the query hidden when `causal`; 0 if a row has nothing finite to attend */ \
    static int softmax_rows_##SUF(T *s, Py_ssize_t rows, Py_ssize_t S, T scale,             \
                                  const T *mask, Py_ssize_t L, int causal)                  \
    {                                                                                        \
        for (Py_ssize_t r = 0; r < rows; r++) {                                              \
            Py_ssize_t i = r % L, lim = causal ? (i + 1 < S ? i + 1 : S) : S;                \
            T *row = s + r * S, total = 0;                                                   \
            const T *mr = mask ? mask + i * S : NULL;                                        \
            if (mr)                                                                          \
                for (Py_ssize_t j = 0; j < lim; j++)                                         \
                    row[j] = row[j] * scale + mr[j];                                         \
            else                                                                             \
                for (Py_ssize_t j = 0; j < lim; j++)                                         \
                    row[j] = row[j] * scale;                                                 \
            T m = row[0];                                                                    \
            _Pragma("omp simd reduction(max:m)")                                             \
            for (Py_ssize_t j = 1; j < lim; j++)                                             \
                m = row[j] > m ? row[j] : m;                                                 \
            if (!isfinite(m))                                                                \
                return 0;                                                                    \
            _Pragma("omp simd reduction(+:total)")                                           \
            for (Py_ssize_t j = 0; j < lim; j++) {                                           \
                T e = EXP(row[j] - m);                                                       \
                row[j] = e;                                                                  \
                total += e;                                                                  \
            }                                                                                \
            T inv = (T)1 / total;                                                            \
            for (Py_ssize_t j = 0; j < lim; j++)                                             \
                row[j] = row[j] * inv;                                                       \
            for (Py_ssize_t j = lim; j < S; j++)                                             \
                row[j] = 0;                                                                  \
        }                                                                                    \
        return 1;                                                                            \
    }                                                                                        \
    /* the softmax's backward from dP: gp <- (gp - rs[r]) p, rs[r] = sum(dP p) of the row */  \
    static void softmax_rows_bwd_##SUF(T *gp, const T *p, const T *rs, Py_ssize_t rows,     \
                                       Py_ssize_t S)                                         \
    {                                                                                        \
        for (Py_ssize_t r = 0; r < rows; r++) {                                              \
            T *g = gp + r * S, k = rs[r];                                                    \
            const T *pr = p + r * S;                                                         \
            for (Py_ssize_t j = 0; j < S; j++)                                               \
                g[j] = (g[j] - k) * pr[j];                                                   \
        }                                                                                    \
    }

XENT_KERNELS(float, f, expf, logf)
XENT_KERNELS(double, d, exp, log)

static PyObject *py_xent_fwd(PyObject *self, PyObject *args)
{
    PyObject *o[4];
    Py_ssize_t N, C;
    if (!PyArg_ParseTuple(args, "OOOOnn", &o[0], &o[1], &o[2], &o[3], &N, &C))
        return NULL;
    char k = kind_of(o[0]);
    if (!k)
        return NULL;
    Held h = {.n = 0};
    PyObject *arrs[] = {o[0], o[2], o[3]};
    static const char *const names[] = {"x", "p", "loss"};
    Py_ssize_t counts[] = {N * C, N * C, N};
    void *p[3];
    if (get_all(&h, arrs, names, "rww", counts, 3, k, p) < 0)
        return NULL;
    const int64_t *t = get_index_below(&h, o[1], "target", N, C);
    if (!t) {
        release_all(&h);
        return NULL;
    }
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = k == 'f' ? xent_fwd_f(p[0], t, p[1], p[2], N, C) : xent_fwd_d(p[0], t, p[1], p[2], N, C);
    Py_END_ALLOW_THREADS
    release_all(&h);
    return PyBool_FromLong(ok);
}

static PyObject *py_xent_bwd(PyObject *self, PyObject *args)
{
    PyObject *o[3];
    double c;
    Py_ssize_t N, C;
    if (!PyArg_ParseTuple(args, "OOdOnn", &o[0], &o[1], &c, &o[2], &N, &C))
        return NULL;
    char k = kind_of(o[0]);
    if (!k)
        return NULL;
    Held h = {.n = 0};
    PyObject *arrs[] = {o[0], o[2]};
    static const char *const names[] = {"p", "out"};
    Py_ssize_t counts[] = {N * C, N * C};
    void *p[2];
    if (get_all(&h, arrs, names, "rw", counts, 2, k, p) < 0)
        return NULL;
    const int64_t *t = get_index_below(&h, o[1], "target", N, C);
    if (!t) {
        release_all(&h);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    if (k == 'f')
        xent_bwd_f(p[0], t, (float)c, p[1], N, C);
    else
        xent_bwd_d(p[0], t, c, p[1], N, C);
    Py_END_ALLOW_THREADS
    release_all(&h);
    Py_RETURN_NONE;
}

static PyObject *py_softmax_rows(PyObject *self, PyObject *args)
{
    PyObject *o[2];
    Py_ssize_t rows, S, L;
    double scale;
    int causal;
    if (!PyArg_ParseTuple(args, "OnndOnp", &o[0], &rows, &S, &scale, &o[1], &L, &causal))
        return NULL;
    char k = kind_of(o[0]);
    if (!k)
        return NULL;
    if (L < 1 || rows % L) {
        PyErr_SetString(PyExc_ValueError, "_native: rows must be a multiple of L >= 1");
        return NULL;
    }
    Held h = {.n = 0};
    static const char *const names[] = {"scores", "mask"};
    Py_ssize_t counts[] = {rows * S, L * S};
    void *p[2];
    if (get_all(&h, o, names, "wR", counts, 2, k, p) < 0)
        return NULL;
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = k == 'f' ? softmax_rows_f(p[0], rows, S, (float)scale, p[1], L, causal)
                  : softmax_rows_d(p[0], rows, S, scale, p[1], L, causal);
    Py_END_ALLOW_THREADS
    release_all(&h);
    return PyBool_FromLong(ok);
}

static PyObject *py_softmax_rows_bwd(PyObject *self, PyObject *args)
{
    PyObject *o[3];
    Py_ssize_t rows, S;
    if (!PyArg_ParseTuple(args, "OOOnn", &o[0], &o[1], &o[2], &rows, &S))
        return NULL;
    char k = kind_of(o[0]);
    if (!k)
        return NULL;
    Held h = {.n = 0};
    static const char *const names[] = {"grad", "p", "rowdot"};
    Py_ssize_t counts[] = {rows * S, rows * S, rows};
    void *p[3];
    if (get_all(&h, o, names, "wrr", counts, 3, k, p) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    if (k == 'f')
        softmax_rows_bwd_f(p[0], p[1], p[2], rows, S);
    else
        softmax_rows_bwd_d(p[0], p[1], p[2], rows, S);
    Py_END_ALLOW_THREADS
    release_all(&h);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------------ layer norm */
/* Over the rows of x (R, C): mu, rstd = 1/sqrt(var + eps) (statistics summed in double),
 * y = (x - mu) rstd w + b. Backward with xh = (x - mu) rstd and gh = g w:
 * gx = (gh - mean(gh) - xh mean(gh xh)) rstd, gw = sum over rows of g xh, gb = of g. */
#define LN_KERNELS(T, SUF, SQRT)                                                             \
    static void ln_fwd_##SUF(const T *x, const T *w, const T *b, T *y, T *mu, T *rstd,       \
                             Py_ssize_t R, Py_ssize_t C, double eps)                         \
    {                                                                                        \
        for (Py_ssize_t r = 0; r < R; r++) {                                                 \
            const T *xr = x + r * C;                                                         \
            T *yr = y + r * C;                                                               \
            double sum = 0, sq = 0;                                                          \
            _Pragma("omp simd reduction(+:sum)")                                             \
            for (Py_ssize_t j = 0; j < C; j++)                                               \
                sum += xr[j];                                                                \
            T m = (T)(sum / C);                                                              \
            _Pragma("omp simd reduction(+:sq)")                                              \
            for (Py_ssize_t j = 0; j < C; j++) {                                             \
                double d = (double)(xr[j] - m);                                              \
                sq += d * d;                                                                 \
            }                                                                                \
            T rs = (T)(1.0 / sqrt(sq / C + eps));                                            \
            mu[r] = m;                                                                       \
            rstd[r] = rs;                                                                    \
            if (w && b)                                                                      \
                for (Py_ssize_t j = 0; j < C; j++)                                           \
                    yr[j] = (xr[j] - m) * rs * w[j] + b[j];                                  \
            else if (w)                                                                      \
                for (Py_ssize_t j = 0; j < C; j++)                                           \
                    yr[j] = (xr[j] - m) * rs * w[j];                                         \
            else if (b)                                                                      \
                for (Py_ssize_t j = 0; j < C; j++)                                           \
                    yr[j] = (xr[j] - m) * rs + b[j];                                         \
            else                                                                             \
                for (Py_ssize_t j = 0; j < C; j++)                                           \
                    yr[j] = (xr[j] - m) * rs;                                                \
        }                                                                                    \
    }                                                                                        \
    static int ln_bwd_##SUF(const T *g, const T *x, const T *w, const T *mu, const T *rstd,  \
                            T *gx, T *gw, T *gb, Py_ssize_t R, Py_ssize_t C)                \
    {                                                                                        \
        double *acc = calloc(2 * C, sizeof(double));                                         \
        T *xh = malloc(C * sizeof(T));                                                       \
        if (!acc || !xh) {                                                                   \
            free(acc);                                                                       \
            free(xh);                                                                        \
            return 0;                                                                        \
        }                                                                                    \
        for (Py_ssize_t r = 0; r < R; r++) {                                                 \
            const T *gr = g + r * C, *xr = x + r * C;                                        \
            T m = mu[r], rs = rstd[r];                                                       \
            double s1 = 0, s2 = 0;                                                           \
            for (Py_ssize_t j = 0; j < C; j++)                                               \
                xh[j] = (xr[j] - m) * rs;                                                    \
            for (Py_ssize_t j = 0; j < C; j++) {                                             \
                acc[j] += (double)(gr[j] * xh[j]);                                           \
                acc[C + j] += (double)gr[j];                                                 \
            }                                                                                \
            if (!gx)                                                                         \
                continue;                                                                    \
            _Pragma("omp simd reduction(+:s1,s2)")                                           \
            for (Py_ssize_t j = 0; j < C; j++) {                                             \
                T gh = w ? gr[j] * w[j] : gr[j];                                             \
                s1 += gh;                                                                    \
                s2 += (double)(gh * xh[j]);                                                  \
            }                                                                                \
            T m1 = (T)(s1 / C), m2 = (T)(s2 / C);                                            \
            T *o = gx + r * C;                                                               \
            for (Py_ssize_t j = 0; j < C; j++) {                                             \
                T gh = w ? gr[j] * w[j] : gr[j];                                             \
                o[j] = (gh - m1 - xh[j] * m2) * rs;                                          \
            }                                                                                \
        }                                                                                    \
        for (Py_ssize_t j = 0; j < C; j++) {                                                 \
            if (gw)                                                                          \
                gw[j] = (T)acc[j];                                                           \
            if (gb)                                                                          \
                gb[j] = (T)acc[C + j];                                                       \
        }                                                                                    \
        free(acc);                                                                           \
        free(xh);                                                                            \
        return 1;                                                                            \
    }

LN_KERNELS(float, f, sqrtf)
LN_KERNELS(double, d, sqrt)

static PyObject *py_ln_fwd(PyObject *self, PyObject *args)
{
    PyObject *o[6];
    Py_ssize_t R, C;
    double eps;
    if (!PyArg_ParseTuple(args, "OOOOOOnnd", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &R, &C,
                          &eps))
        return NULL;
    char k = kind_of(o[0]);
    if (!k)
        return NULL;
    Held h = {.n = 0};
    static const char *const names[] = {"x", "weight", "bias", "y", "mean", "rstd"};
    Py_ssize_t counts[] = {R * C, C, C, R * C, R, R};
    void *p[6];
    if (get_all(&h, o, names, "rRRwww", counts, 6, k, p) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    if (k == 'f')
        ln_fwd_f(p[0], p[1], p[2], p[3], p[4], p[5], R, C, eps);
    else
        ln_fwd_d(p[0], p[1], p[2], p[3], p[4], p[5], R, C, eps);
    Py_END_ALLOW_THREADS
    release_all(&h);
    Py_RETURN_NONE;
}

static PyObject *py_ln_bwd(PyObject *self, PyObject *args)
{
    PyObject *o[8];
    Py_ssize_t R, C;
    if (!PyArg_ParseTuple(args, "OOOOOOOOnn", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6],
                          &o[7], &R, &C))
        return NULL;
    char k = kind_of(o[0]);
    if (!k)
        return NULL;
    Held h = {.n = 0};
    static const char *const names[] = {"grad", "x", "weight", "mean", "rstd", "grad_x",
                                        "grad_weight", "grad_bias"};
    Py_ssize_t counts[] = {R * C, R * C, C, R, R, R * C, C, C};
    void *p[8];
    if (get_all(&h, o, names, "rrRrrWWW", counts, 8, k, p) < 0)
        return NULL;
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = k == 'f' ? ln_bwd_f(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], R, C)
                  : ln_bwd_d(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], R, C);
    Py_END_ALLOW_THREADS
    release_all(&h);
    if (!ok)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------------------ relu */
/* y = max(x, 0) with NaN kept (x < 0 is false for NaN); backward gx = g where y > 0, else 0
 * (PyTorch's threshold_backward: an inf gradient at a dead unit gives 0, not NaN). */
#define RELU_KERNELS(T, SUF)                                                                 \
    static void relu_fwd_##SUF(const T *x, T *y, Py_ssize_t n)                              \
    {                                                                                        \
        for (Py_ssize_t i = 0; i < n; i++)                                                   \
            y[i] = x[i] < 0 ? (T)0 : x[i];                                                   \
    }                                                                                        \
    static void relu_bwd_##SUF(const T *g, const T *y, T *gx, Py_ssize_t n)                 \
    {                                                                                        \
        for (Py_ssize_t i = 0; i < n; i++)                                                   \
            gx[i] = y[i] > 0 ? g[i] : (T)0;                                                  \
    }

RELU_KERNELS(float, f)
RELU_KERNELS(double, d)

static PyObject *py_relu_fwd(PyObject *self, PyObject *args)
{
    PyObject *o[2];
    if (!PyArg_ParseTuple(args, "OO", &o[0], &o[1]))
        return NULL;
    char k = kind_of(o[0]);
    Py_ssize_t n = k ? count_of(o[0], k) : -1;
    if (n < 0)
        return NULL;
    Held h = {.n = 0};
    static const char *const names[] = {"x", "y"};
    Py_ssize_t counts[] = {n, n};
    void *p[2];
    if (get_all(&h, o, names, "rw", counts, 2, k, p) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    if (k == 'f')
        relu_fwd_f(p[0], p[1], n);
    else
        relu_fwd_d(p[0], p[1], n);
    Py_END_ALLOW_THREADS
    release_all(&h);
    Py_RETURN_NONE;
}

static PyObject *py_relu_bwd(PyObject *self, PyObject *args)
{
    PyObject *o[3];
    if (!PyArg_ParseTuple(args, "OOO", &o[0], &o[1], &o[2]))
        return NULL;
    char k = kind_of(o[0]);
    Py_ssize_t n = k ? count_of(o[0], k) : -1;
    if (n < 0)
        return NULL;
    Held h = {.n = 0};
    static const char *const names[] = {"grad", "y", "grad_x"};
    Py_ssize_t counts[] = {n, n, n};
    void *p[3];
    if (get_all(&h, o, names, "rrw", counts, 3, k, p) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    if (k == 'f')
        relu_bwd_f(p[0], p[1], p[2], n);
    else
        relu_bwd_d(p[0], p[1], p[2], n);
    Py_END_ALLOW_THREADS
    release_all(&h);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ strided scatter-add */
/* dst[off + sum_i idx_i dst_strides_i] += src[flat idx] over the index grid `shape` (src
 * contiguous, strides in elements; elements of dst may be hit several times, in order). It is
 * the adjoint of unfolding an image into convolution columns (col2im): NumPy needs one call per
 * kernel offset for it, since an element receives from several offsets. */
#define MAXDIM 8
#define SCATTER_KERNEL(T, SUF)                                                               \
    static void scatter_add_##SUF(T *dst, const T *src, int nd, const Py_ssize_t *shape,     \
                                  const Py_ssize_t *st)                                      \
    {                                                                                        \
        Py_ssize_t idx[MAXDIM] = {0}, inner = shape[nd - 1], s = st[nd - 1], outer = 1;      \
        for (int i = 0; i < nd - 1; i++)                                                     \
            outer *= shape[i];                                                               \
        Py_ssize_t base = 0;                                                                 \
        for (Py_ssize_t o = 0; o < outer; o++) {                                             \
            T *d = dst + base;                                                               \
            if (s == 1)                                                                      \
                for (Py_ssize_t j = 0; j < inner; j++)                                       \
                    d[j] += src[j];                                                          \
            else                                                                             \
                for (Py_ssize_t j = 0; j < inner; j++)                                       \
                    d[j * s] += src[j];                                                      \
            src += inner;                                                                    \
            for (int i = nd - 2; i >= 0; i--) { /* odometer over the outer dims */            \
                base += st[i];                                                               \
                if (++idx[i] < shape[i])                                                     \
                    break;                                                                   \
                base -= st[i] * shape[i];                                                    \
                idx[i] = 0;                                                                  \
            }                                                                                \
        }                                                                                    \
    }

SCATTER_KERNEL(float, f)
SCATTER_KERNEL(double, d)

/* Its forward twin, the unfold: dst[flat idx] = src[off + sum_i idx_i strides_i] (dst
 * contiguous), for im2col's copy of an image into convolution columns. */
#define GATHER_KERNEL(T, SUF)                                                                \
    static void gather_##SUF(T *dst, const T *src, int nd, const Py_ssize_t *shape,          \
                             const Py_ssize_t *st)                                           \
    {                                                                                        \
        Py_ssize_t idx[MAXDIM] = {0}, inner = shape[nd - 1], s = st[nd - 1], outer = 1;      \
        for (int i = 0; i < nd - 1; i++)                                                     \
            outer *= shape[i];                                                               \
        Py_ssize_t base = 0;                                                                 \
        for (Py_ssize_t o = 0; o < outer; o++) {                                             \
            const T *sp = src + base;                                                        \
            if (s == 1)                                                                      \
                for (Py_ssize_t j = 0; j < inner; j++)                                       \
                    dst[j] = sp[j];                                                          \
            else                                                                             \
                for (Py_ssize_t j = 0; j < inner; j++)                                       \
                    dst[j] = sp[j * s];                                                      \
            dst += inner;                                                                    \
            for (int i = nd - 2; i >= 0; i--) {                                              \
                base += st[i];                                                               \
                if (++idx[i] < shape[i])                                                     \
                    break;                                                                   \
                base -= st[i] * shape[i];                                                    \
                idx[i] = 0;                                                                  \
            }                                                                                \
        }                                                                                    \
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

static PyObject *py_scatter_add(PyObject *self, PyObject *args) { return strided(args, 0); }
static PyObject *py_gather(PyObject *self, PyObject *args) { return strided(args, 1); }

/* ------------------------------------------------------------------------ block max pool */
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
                if (pool_row_fast_##SUF(row, o, at, W, kh, kw, Wo))                          \
                    pool_row_exact_##SUF(row, o, at, W, kh, kw, Wo);                         \
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

static PyObject *py_pool_fwd(PyObject *self, PyObject *args) { return py_pool(self, args, 0); }
static PyObject *py_pool_bwd(PyObject *self, PyObject *args) { return py_pool(self, args, 1); }

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

static PyObject *py_index_add_rows(PyObject *self, PyObject *args)
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

static PyObject *py_conv2d_small(PyObject *self, PyObject *args)
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

/* --------------------------------------------------------------- LSTM, small-batch inference */
/* A whole sequence of one LSTM direction without a graph, for small batches, where a BLAS call
 * per step costs more than the product: h W_hh^T as dot products (W_hh row-major, so each gate
 * reads one contiguous row), then the cell as in lstm_fwd. X (T, B, 4H): input projections in
 * PyTorch's gate order i, f, g, o; hs (T + 1, B, H) holds h0 in hs[0] and receives every step's
 * output in processing order; c (B, H) is updated in place; g is scratch of 4H. */
#define LSTM_SEQ_KERNEL(T, SUF, EXP, TANH)                                                   \
    static void lstm_seq_##SUF(const T *X, const T *w, const T *b, T *hs, T *c, T *g,        \
                               Py_ssize_t steps, Py_ssize_t B, Py_ssize_t H, int reverse)    \
    {                                                                                        \
        for (Py_ssize_t s = 0; s < steps; s++) {                                             \
            Py_ssize_t t = reverse ? steps - 1 - s : s;                                      \
            for (Py_ssize_t r = 0; r < B; r++) {                                             \
                const T *h = hs + (s * B + r) * H, *xr = X + (t * B + r) * 4 * H;            \
                /* eight rows at a time: eight independent sums in flight (an add's       \
                 * latency, not the loads, limits one sum); the rest one row at a time */    \
                Py_ssize_t q = 0;                                                            \
                for (; q + 8 <= 4 * H; q += 8) {                                             \
                    const T *w0 = w + q * H, *w1 = w0 + H, *w2 = w1 + H, *w3 = w2 + H;       \
                    const T *w4 = w3 + H, *w5 = w4 + H, *w6 = w5 + H, *w7 = w6 + H;          \
                    T a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;        \
                    _Pragma("omp simd reduction(+:a0, a1, a2, a3, a4, a5, a6, a7)")          \
                    for (Py_ssize_t j = 0; j < H; j++) {                                     \
                        T hj = h[j];                                                         \
                        a0 += w0[j] * hj;                                                    \
                        a1 += w1[j] * hj;                                                    \
                        a2 += w2[j] * hj;                                                    \
                        a3 += w3[j] * hj;                                                    \
                        a4 += w4[j] * hj;                                                    \
                        a5 += w5[j] * hj;                                                    \
                        a6 += w6[j] * hj;                                                    \
                        a7 += w7[j] * hj;                                                    \
                    }                                                                        \
                    T sums[8] = {a0, a1, a2, a3, a4, a5, a6, a7};                            \
                    for (int u = 0; u < 8; u++)                                              \
                        g[q + u] = sums[u] + xr[q + u] + (b ? b[q + u] : (T)0);              \
                }                                                                            \
                for (; q < 4 * H; q++) {                                                     \
                    T acc = 0;                                                               \
                    _Pragma("omp simd reduction(+:acc)")                                     \
                    for (Py_ssize_t j = 0; j < H; j++)                                       \
                        acc += w[q * H + j] * h[j];                                          \
                    g[q] = acc + xr[q] + (b ? b[q] : (T)0);                                  \
                }                                                                            \
                T *cr = c + r * H, *hn = hs + ((s + 1) * B + r) * H;                         \
                _Pragma("omp simd")                                                          \
                for (Py_ssize_t j = 0; j < H; j++) {                                         \
                    T i = (T)1 / ((T)1 + EXP(-g[j]));                                        \
                    T f = (T)1 / ((T)1 + EXP(-g[H + j]));                                    \
                    T gg = TANH(g[2 * H + j]);                                               \
                    T o = (T)1 / ((T)1 + EXP(-g[3 * H + j]));                                \
                    T cv = f * cr[j] + i * gg;                                               \
                    cr[j] = cv;                                                              \
                    hn[j] = o * TANH(cv);                                                    \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
    }

LSTM_SEQ_KERNEL(float, f, expf, tanhf)
LSTM_SEQ_KERNEL(double, d, exp, tanh)

static PyObject *py_lstm_seq(PyObject *self, PyObject *args)
{
    PyObject *o[5];
    Py_ssize_t steps, B, H;
    int reverse;
    if (!PyArg_ParseTuple(args, "OOOOOnnnp", &o[0], &o[1], &o[2], &o[3], &o[4], &steps, &B, &H,
                          &reverse))
        return NULL;
    char k = kind_of(o[0]);
    if (!k)
        return NULL;
    Held h = {.n = 0};
    static const char *const names[] = {"x", "w_hh", "bias", "hs", "c"};
    Py_ssize_t counts[] = {steps * B * 4 * H, 4 * H * H, 4 * H, (steps + 1) * B * H, B * H};
    void *p[5];
    if (get_all(&h, o, names, "rrRww", counts, 5, k, p) < 0)
        return NULL;
    void *g = malloc((size_t)(4 * H) * (k == 'f' ? 4 : 8));
    if (!g) {
        release_all(&h);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    if (k == 'f')
        lstm_seq_f(p[0], p[1], p[2], p[3], p[4], g, steps, B, H, reverse);
    else
        lstm_seq_d(p[0], p[1], p[2], p[3], p[4], g, steps, B, H, reverse);
    Py_END_ALLOW_THREADS
    free(g);
    release_all(&h);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"lstm_fwd", py_lstm_fwd, METH_VARARGS,
     "lstm_fwd(mm, x, b, c, acts, c_new, tanh_c, out, rows, H): an LSTM step's pointwise part."},
    {"lstm_bwd", py_lstm_bwd, METH_VARARGS,
     "lstm_bwd(dm, dc, acts, c, tanh_c, dpre, rows, H): its backward; dc is updated in place."},
    {"adam", py_adam, METH_VARARGS, "One fused Adam/AdamW update of one parameter, in place."},
    {"sgd", py_sgd, METH_VARARGS, "One fused SGD (momentum, Nesterov) update, in place."},
    {"xent_fwd", py_xent_fwd, METH_VARARGS,
     "xent_fwd(x, t, p, loss, N, C) -> ok: softmax and per-row cross-entropy."},
    {"xent_bwd", py_xent_bwd, METH_VARARGS, "xent_bwd(p, t, c, out, N, C): c (p - onehot(t))."},
    {"softmax_rows", py_softmax_rows, METH_VARARGS,
     "softmax_rows(s, rows, S, scale, mask, L, causal) -> ok: attention weights in place."},
    {"softmax_rows_bwd", py_softmax_rows_bwd, METH_VARARGS,
     "softmax_rows_bwd(gp, p, rs, rows, S): gp <- (gp - rs) p."},
    {"layernorm_fwd", py_ln_fwd, METH_VARARGS,
     "layernorm_fwd(x, w, b, y, mean, rstd, R, C, eps): layer norm over rows."},
    {"layernorm_bwd", py_ln_bwd, METH_VARARGS,
     "layernorm_bwd(g, x, w, mean, rstd, gx, gw, gb, R, C): its backward (None to skip)."},
    {"relu_fwd", py_relu_fwd, METH_VARARGS, "relu_fwd(x, y): y = max(x, 0), NaN kept."},
    {"relu_bwd", py_relu_bwd, METH_VARARGS, "relu_bwd(g, y, gx): gx = g where y > 0."},
    {"scatter_add", py_scatter_add, METH_VARARGS,
     "scatter_add(dst, src, shape, strides, offset): dst[strided grid] += src (col2im)."},
    {"maxpool_fwd", py_pool_fwd, METH_VARARGS,
     "maxpool_fwd(x, out, argmax, P, H, W, kh, kw, Ho, Wo): block max pool with argmax."},
    {"maxpool_bwd", py_pool_bwd, METH_VARARGS,
     "maxpool_bwd(g, argmax, gx, P, H, W, kh, kw, Ho, Wo): g placed at each argmax."},
    {"index_add_rows", py_index_add_rows, METH_VARARGS,
     "index_add_rows(out, idx, g, R, n, F): out[idx[i]] += g[i] in order."},
    {"conv2d_small", py_conv2d_small, METH_VARARGS,
     "conv2d_small(x, w, b, out, dims): direct 2-D convolution for small problems."},
    {"gather", py_gather, METH_VARARGS,
     "gather(dst, src, shape, strides, offset): dst = src[strided grid] (im2col)."},
    {"lstm_seq", py_lstm_seq, METH_VARARGS,
     "lstm_seq(x, w_hh, b, hs, c, T, B, H, reverse): a small-batch LSTM sequence, no graph."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_native",
    .m_doc = "ember's optional compiled kernels (see ember.ops.native).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
