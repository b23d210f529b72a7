/* Row-wise and elementwise kernels: cross-entropy, the attention softmax, layer norm, relu
 * (used by ember.ops.loss, .attention, .normalize, .activation). */
#include "native.h"

/* ------------------------------------------------------------------------- softmax rows */
/* Cross-entropy over the rows of x (N, C) with class targets t: the softmax p and each row's
 * loss log(sum exp(x - m)) - (x_t - m), m the row max. Returns 0 if some row is not finite
 * (the caller then takes the NumPy path, which handles inf and NaN as PyTorch does). */
#define XENT_KERNELS(T, SUF, EXP, LOG)                                                       \
    static int xent_fwd_##SUF(const T *x, const int64_t *t, T *p, T *loss, Py_ssize_t r0,    \
                              Py_ssize_t r1, Py_ssize_t C)                                   \
    {                                                                                        \
        for (Py_ssize_t r = r0; r < r1; r++) {                                               \
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
    static void xent_bwd_##SUF(const T *p, const int64_t *t, T c, T *out, Py_ssize_t r0,     \
                               Py_ssize_t r1, Py_ssize_t C)                                  \
    {                                                                                        \
        for (Py_ssize_t r = r0; r < r1; r++) {                                               \
            const T *pr = p + r * C;                                                         \
            T *o = out + r * C;                                                              \
            for (Py_ssize_t j = 0; j < C; j++)                                               \
                o[j] = pr[j] * c;                                                            \
            o[t[r]] -= c;                                                                    \
        }                                                                                    \
    }                                                                                        \
    /* attention weights in place: s <- softmax(s scale + mask[r % L]) over each row of S,   \
     * keys after the query hidden when `causal`; 0 if a row has nothing finite to attend */ \
    static int softmax_rows_##SUF(T *s, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t S, T scale, \
                                  const T *mask, Py_ssize_t L, int causal)                  \
    {                                                                                        \
        for (Py_ssize_t r = r0; r < r1; r++) {                                               \
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
    static void softmax_rows_bwd_##SUF(T *gp, const T *p, const T *rs, Py_ssize_t r0,       \
                                       Py_ssize_t r1, Py_ssize_t S)                          \
    {                                                                                        \
        for (Py_ssize_t r = r0; r < r1; r++) {                                               \
            T *g = gp + r * S, k = rs[r];                                                    \
            const T *pr = p + r * S;                                                         \
            for (Py_ssize_t j = 0; j < S; j++)                                               \
                g[j] = (g[j] - k) * pr[j];                                                   \
        }                                                                                    \
    }

XENT_KERNELS(float, f, expf, logf)
XENT_KERNELS(double, d, exp, log)

/* The four kernels above over a range of rows, for run_rows: their arrays and sizes */
typedef struct {
    void *a, *b, *c;       /* xent: x, p, loss / p, out; softmax: s, mask / gp, p, rs */
    const int64_t *t;      /* xent: the targets */
    double scale;          /* xent_bwd: c; softmax: the scale */
    Py_ssize_t C, L;       /* the row length; softmax: the mask's rows */
    int causal, which;     /* which: 0 xent_fwd, 1 xent_bwd, 2 softmax, 3 softmax_bwd */
    char kind;
} RowArgs;

static int rows_part(void *arg, Py_ssize_t r0, Py_ssize_t r1, int half)
{
    const RowArgs *a = arg;
    int f = a->kind == 'f';
    switch (a->which) {
    case 0:
        return f ? xent_fwd_f(a->a, a->t, a->b, a->c, r0, r1, a->C)
                 : xent_fwd_d(a->a, a->t, a->b, a->c, r0, r1, a->C);
    case 1:
        if (f)
            xent_bwd_f(a->a, a->t, (float)a->scale, a->b, r0, r1, a->C);
        else
            xent_bwd_d(a->a, a->t, a->scale, a->b, r0, r1, a->C);
        return 1;
    case 2:
        return f ? softmax_rows_f(a->a, r0, r1, a->C, (float)a->scale, a->b, a->L, a->causal)
                 : softmax_rows_d(a->a, r0, r1, a->C, a->scale, a->b, a->L, a->causal);
    default:
        if (f)
            softmax_rows_bwd_f(a->a, a->b, a->c, r0, r1, a->C);
        else
            softmax_rows_bwd_d(a->a, a->b, a->c, r0, r1, a->C);
        return 1;
    }
}

PyObject *py_xent_fwd(PyObject *self, PyObject *args)
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
    RowArgs a = {.a = p[0], .b = p[1], .c = p[2], .t = t, .C = C, .which = 0, .kind = k};
    ok = run_rows(rows_part, &a, N, 2.0 * N * C);
    Py_END_ALLOW_THREADS
    release_all(&h);
    return PyBool_FromLong(ok);
}

PyObject *py_xent_bwd(PyObject *self, PyObject *args)
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
    RowArgs a = {.a = p[0], .b = p[1], .t = t, .scale = c, .C = C, .which = 1, .kind = k};
    run_rows(rows_part, &a, N, 2.0 * N * C);
    Py_END_ALLOW_THREADS
    release_all(&h);
    Py_RETURN_NONE;
}

PyObject *py_softmax_rows(PyObject *self, PyObject *args)
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
    RowArgs a = {.a = p[0], .b = p[1], .scale = scale, .C = S, .L = L, .causal = causal,
                 .which = 2, .kind = k};
    ok = run_rows(rows_part, &a, rows, 2.0 * rows * S);
    Py_END_ALLOW_THREADS
    release_all(&h);
    return PyBool_FromLong(ok);
}

PyObject *py_softmax_rows_bwd(PyObject *self, PyObject *args)
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
    RowArgs a = {.a = p[0], .b = p[1], .c = p[2], .C = S, .which = 3, .kind = k};
    run_rows(rows_part, &a, rows, 3.0 * rows * S);
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
                             Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t C, double eps)         \
    {                                                                                        \
        for (Py_ssize_t r = r0; r < r1; r++) {                                               \
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
    /* rows [r0, r1): gx, and their sums of g xh and g added to acc (2C doubles); xh is C  \
     * values of scratch */                                                                  \
    static void ln_bwd_##SUF(const T *g, const T *x, const T *w, const T *mu, const T *rstd, \
                             T *gx, double *acc, T *xh, Py_ssize_t r0, Py_ssize_t r1,        \
                             Py_ssize_t C)                                                   \
    {                                                                                        \
        for (Py_ssize_t r = r0; r < r1; r++) {                                               \
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
    }

LN_KERNELS(float, f, sqrtf)
LN_KERNELS(double, d, sqrt)

/* layer norm over a range of rows, for run_rows; the backward's column sums per half */
typedef struct {
    const void *x, *w, *b, *g;
    void *y, *mu, *rstd, *gx, *xh[2];
    double *acc[2], eps;
    Py_ssize_t C;
    int backward;
    char kind;
} LnArgs;

static int ln_part(void *arg, Py_ssize_t r0, Py_ssize_t r1, int h)
{
    const LnArgs *a = arg;
    if (!a->backward && a->kind == 'f')
        ln_fwd_f(a->x, a->w, a->b, a->y, a->mu, a->rstd, r0, r1, a->C, a->eps);
    else if (!a->backward)
        ln_fwd_d(a->x, a->w, a->b, a->y, a->mu, a->rstd, r0, r1, a->C, a->eps);
    else if (a->kind == 'f')
        ln_bwd_f(a->g, a->x, a->w, a->mu, a->rstd, a->gx, a->acc[h], a->xh[h], r0, r1, a->C);
    else
        ln_bwd_d(a->g, a->x, a->w, a->mu, a->rstd, a->gx, a->acc[h], a->xh[h], r0, r1, a->C);
    return 1;
}

PyObject *py_ln_fwd(PyObject *self, PyObject *args)
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
    LnArgs a = {.x = p[0], .w = p[1], .b = p[2], .y = p[3], .mu = p[4], .rstd = p[5],
                .eps = eps, .C = C, .kind = k};
    Py_BEGIN_ALLOW_THREADS
    run_rows(ln_part, &a, R, 3.0 * R * C);
    Py_END_ALLOW_THREADS
    release_all(&h);
    Py_RETURN_NONE;
}

PyObject *py_ln_bwd(PyObject *self, PyObject *args)
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
    /* per half: the column sums (2C doubles) and a row of xh */
    size_t item = k == 'f' ? 4 : 8;
    char *scratch = calloc(2, 2 * C * sizeof(double) + C * item);
    if (!scratch) {
        release_all(&h);
        return PyErr_NoMemory();
    }
    LnArgs a = {.g = p[0], .x = p[1], .w = p[2], .mu = p[3], .rstd = p[4], .gx = p[5],
                .C = C, .backward = 1, .kind = k};
    for (int i = 0; i < 2; i++) {
        a.acc[i] = (double *)(scratch + i * (2 * C * sizeof(double) + C * item));
        a.xh[i] = a.acc[i] + 2 * C;
    }
    Py_BEGIN_ALLOW_THREADS
    run_rows(ln_part, &a, R, 4.0 * R * C);
    for (Py_ssize_t j = 0; j < C; j++) { /* half 0's sums, then half 1's */
        double sw = a.acc[0][j] + a.acc[1][j], sb = a.acc[0][C + j] + a.acc[1][C + j];
        if (k == 'f' && p[6])
            ((float *)p[6])[j] = (float)sw;
        else if (p[6])
            ((double *)p[6])[j] = sw;
        if (k == 'f' && p[7])
            ((float *)p[7])[j] = (float)sb;
        else if (p[7])
            ((double *)p[7])[j] = sb;
    }
    Py_END_ALLOW_THREADS
    free(scratch);
    release_all(&h);
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

PyObject *py_relu_fwd(PyObject *self, PyObject *args)
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

PyObject *py_relu_bwd(PyObject *self, PyObject *args)
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
