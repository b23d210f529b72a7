/* Direct 2-D convolution for few input taps (used by ember.ops.conv).
 *
 * A convolution whose C * kh * kw is small (LeNet's first layer: 1 * 5 * 5 = 25) makes a
 * skinny GEMM after the unfold: 6 outputs from 25 rows of columns, which runs at a fraction of
 * the machine's speed, after a 5 MB unfold copy at batch 64. Here each output row is computed
 * from the zero-padded input rows directly: a block of four vectors of output columns of two
 * output channels stays in registers while every tap adds a broadcast weight times a
 * contiguous run of the input row; the weight gradient the same way round (each tap's sum over
 * the output grid kept as vector partial sums). Stride 1, dilation 1, groups 1. The images
 * are split in two halves between the caller and the helper thread (threads.c); the weight
 * gradient sums each half on its own and adds them in a fixed order, so the bits do not depend
 * on which thread ran what.
 *
 * Written with GCC's vector extension (a 32-byte vector type, its arithmetic, memcpy loads: no
 * intrinsics) and built with fused multiply-add, which the rest of the extension is not: these
 * loops round differently from the GEMM path anyway, and both are checked against PyTorch. */
#include "native.h"
#include "simd.h"

#pragma GCC push_options
#pragma GCC optimize("fp-contract=fast")

/* dims: N, C, H, W, O, kh, kw, pad top, pad left, Ho, Wo */
#define DIRECT_KERNELS(T, SUF, V, VI, L)                                                     \
    /* the first m lanes of p, zeros in the others (bits cleared: no inf or NaN survives) */ \
    static inline V load_first_##SUF(const T *p, VI keep)                                    \
    {                                                                                        \
        return (V)((VI)loadv_##SUF(p) & keep);                                               \
    }                                                                                        \
    /* image n of x (C, H, W) into xp (C, Hp, Wp), zero-padded: rows from `top`, columns     \
     * from `left`, zeros around and beyond */                                               \
    static void pad_image_##SUF(const T *x, T *xp, const Py_ssize_t *d, Py_ssize_t n,        \
                                Py_ssize_t Hp, Py_ssize_t Wp)                                \
    {                                                                                        \
        Py_ssize_t C = d[1], H = d[2], W = d[3], top = d[7], left = d[8];                    \
        memset(xp, 0, sizeof(T) * C * Hp * Wp);                                              \
        for (Py_ssize_t c = 0; c < C; c++)                                                   \
            for (Py_ssize_t i = 0; i < H; i++) {                                             \
                Py_ssize_t r = i + top;                                                      \
                if (r >= Hp)                                                                 \
                    continue;                                                                \
                const T *src = x + ((n * C + c) * H + i) * W;                                \
                T *dst = xp + (c * Hp + r) * Wp;                                             \
                for (Py_ssize_t j = 0; j < W && j + left < Wp; j++)                          \
                    dst[j + left] = src[j];                                                  \
            }                                                                                \
    }                                                                                        \
    WGRAD_TAPS(T, SUF, V, VI, L, 3)                                                          \
    WGRAD_TAPS(T, SUF, V, VI, L, 5)                                                          \
    /* OB output channels from o, output row y, columns x0 .. x0 + 4L (stored up to Wo):     \
     * 4 OB vector sums in registers, each tap one broadcast weight times 4 input vectors */ \
    DIRECT_BLOCK(T, SUF, V, L, 2)                                                            \
    DIRECT_BLOCK(T, SUF, V, L, 1)                                                            \
    static void direct_fwd_##SUF(const T *x, const T *w, const T *b, T *out,                 \
                                 const Py_ssize_t *d, T *xp, Py_ssize_t Hp, Py_ssize_t Wp,   \
                                 Py_ssize_t n0, Py_ssize_t n1)                               \
    {                                                                                        \
        Py_ssize_t O = d[4], Ho = d[9], Wo = d[10];                                          \
        for (Py_ssize_t n = n0; n < n1; n++) {                                               \
            pad_image_##SUF(x, xp, d, n, Hp, Wp);                                            \
            for (Py_ssize_t y = 0; y < Ho; y++)                                              \
                for (Py_ssize_t x0 = 0; x0 < Wo; x0 += 4 * L) {                              \
                    Py_ssize_t o = 0;                                                        \
                    for (; o + 2 <= O; o += 2)                                               \
                        direct_block2_##SUF(xp, w, b, out, d, Hp, Wp, n, o, y, x0);          \
                    for (; o < O; o++)                                                       \
                        direct_block1_##SUF(xp, w, b, out, d, Hp, Wp, n, o, y, x0);          \
                }                                                                            \
        }                                                                                    \
    }                                                                                        \
    /* gw[o, c, ky, kx] = sum over n, y, x of g[n, o, y, x] xp[n, c, y + ky, x + kx], four   \
     * taps at a time as vector partial sums; gp is one image's gradient with its rows       \
     * padded with zeros to whole vectors (Wg columns) */                                    \
    static void direct_wgrad_##SUF(const T *x, const T *g, T *gw, const Py_ssize_t *d,       \
                                   T *xp, T *gp, Py_ssize_t Hp, Py_ssize_t Wp,               \
                                   Py_ssize_t Wg, Py_ssize_t n0, Py_ssize_t n1)              \
    {                                                                                        \
        Py_ssize_t C = d[1], O = d[4], kh = d[5], kw = d[6], Ho = d[9], Wo = d[10];          \
        memset(gw, 0, sizeof(T) * O * C * kh * kw);                                          \
        for (Py_ssize_t n = n0; n < n1; n++) {                                               \
            pad_image_##SUF(x, xp, d, n, Hp, Wp);                                            \
            memset(gp, 0, sizeof(T) * O * Ho * Wg);                                          \
            for (Py_ssize_t o = 0; o < O; o++)                                               \
                for (Py_ssize_t y = 0; y < Ho; y++)                                          \
                    memcpy(gp + (o * Ho + y) * Wg, g + ((n * O + o) * Ho + y) * Wo,          \
                           sizeof(T) * Wo);                                                  \
            for (Py_ssize_t o = 0; o < O; o++)                                               \
                for (Py_ssize_t c = 0; c < C; c++)                                           \
                    for (Py_ssize_t ky = 0; ky < kh; ky++) {                                 \
                        T *dst = gw + ((o * C + c) * kh + ky) * kw;                          \
                        const T *gr = gp + o * Ho * Wg, *xr = xp + (c * Hp + ky) * Wp;       \
                        if (kw == 3) {                                                       \
                            wgrad_taps3_##SUF(gr, xr, dst, Ho, Wo, Wg, Wp);                  \
                            continue;                                                        \
                        }                                                                    \
                        if (kw == 5) {                                                       \
                            wgrad_taps5_##SUF(gr, xr, dst, Ho, Wo, Wg, Wp);                  \
                            continue;                                                        \
                        }                                                                    \
                        for (Py_ssize_t k0 = 0; k0 < kw; k0 += 4) {                          \
                            V a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};                        \
                            Py_ssize_t nt = kw - k0 < 4 ? kw - k0 : 4;                       \
                            VI keep;                                                         \
                            for (int u = 0; u < L; u++)                                      \
                                keep[u] = (Wg - L + u) < Wo ? -1 : 0;                        \
                            for (Py_ssize_t y = 0; y < Ho; y++) {                            \
                                const T *gy = gr + y * Wg, *xy = xr + y * Wp + k0;           \
                                for (Py_ssize_t x0 = 0; x0 < Wg; x0 += L) {                  \
                                    V gv = loadv_##SUF(gy + x0);                             \
                                    VI m = x0 + L < Wg ? (VI){0} - 1 : keep;                 \
                                    a0 += gv * load_first_##SUF(xy + x0, m);                 \
                                    a1 += gv * load_first_##SUF(xy + x0 + 1, m);             \
                                    a2 += gv * load_first_##SUF(xy + x0 + 2, m);             \
                                    a3 += gv * load_first_##SUF(xy + x0 + 3, m);             \
                                }                                                            \
                            }                                                                \
                            V sums[4] = {a0, a1, a2, a3};                                    \
                            for (Py_ssize_t t = 0; t < nt; t++) {                            \
                                T s = 0;                                                     \
                                for (int u = 0; u < L; u++)                                  \
                                    s += sums[t][u];                                         \
                                dst[k0 + t] += s;                                            \
                            }                                                                \
                        }                                                                    \
                    }                                                                        \
        }                                                                                    \
    }

/* one weight row's K taps at once (K fixed: its K vector sums stay in registers): dst[t] +=
 * sum over y, x of g[y, x] xp[y, x + t], for g rows of Wg columns and xp rows of Wp */
#define WGRAD_TAPS(T, SUF, V, VI, L, K)                                                      \
    static void wgrad_taps##K##_##SUF(const T *g, const T *xp, T *dst, Py_ssize_t Ho,        \
                                      Py_ssize_t Wo, Py_ssize_t Wg, Py_ssize_t Wp)           \
    {                                                                                        \
        V a[K];                                                                              \
        for (int t = 0; t < K; t++)                                                          \
            a[t] = (V){0};                                                                   \
        VI keep; /* the last vector's lanes that are real output columns */                  \
        for (int u = 0; u < L; u++)                                                          \
            keep[u] = (Wg - L + u) < Wo ? -1 : 0;                                            \
        for (Py_ssize_t y = 0; y < Ho; y++) {                                                \
            const T *gy = g + y * Wg, *xy = xp + y * Wp;                                     \
            Py_ssize_t x0 = 0;                                                               \
            for (; x0 < Wg - L; x0 += L) {                                                   \
                V gv = loadv_##SUF(gy + x0);                                                 \
                for (int t = 0; t < K; t++)                                                  \
                    a[t] += gv * loadv_##SUF(xy + x0 + t);                                   \
            }                                                                                \
            V gv = loadv_##SUF(gy + x0); /* (zeros past Wo) */                               \
            for (int t = 0; t < K; t++)                                                      \
                a[t] += gv * load_first_##SUF(xy + x0 + t, keep);                            \
        }                                                                                    \
        for (int t = 0; t < K; t++) {                                                        \
            T s = 0;                                                                         \
            for (int u = 0; u < L; u++)                                                      \
                s += a[t][u];                                                                \
            dst[t] += s;                                                                     \
        }                                                                                    \
    }

#define DIRECT_BLOCK(T, SUF, V, L, OB)                                                       \
    static void direct_block##OB##_##SUF(const T *xp, const T *w, const T *b, T *out,        \
                                         const Py_ssize_t *d, Py_ssize_t Hp, Py_ssize_t Wp,  \
                                         Py_ssize_t n, Py_ssize_t o, Py_ssize_t y,           \
                                         Py_ssize_t x0)                                      \
    {                                                                                        \
        Py_ssize_t C = d[1], O = d[4], kh = d[5], kw = d[6], Ho = d[9], Wo = d[10];          \
        V acc[OB][4];                                                                        \
        for (int q = 0; q < OB; q++) {                                                       \
            T bq = b ? b[o + q] : (T)0;                                                      \
            for (int i = 0; i < 4; i++)                                                      \
                acc[q][i] = splat_##SUF(&bq);                                                \
        }                                                                                    \
        for (Py_ssize_t c = 0; c < C; c++)                                                   \
            for (Py_ssize_t ky = 0; ky < kh; ky++) {                                         \
                const T *row = xp + (c * Hp + y + ky) * Wp + x0;                             \
                for (Py_ssize_t kx = 0; kx < kw; kx++) {                                     \
                    V xv0 = loadv_##SUF(row + kx), xv1 = loadv_##SUF(row + kx + L);          \
                    V xv2 = loadv_##SUF(row + kx + 2 * L), xv3 = loadv_##SUF(row + kx + 3 * L);\
                    for (int q = 0; q < OB; q++) {                                           \
                        V wv = splat_##SUF(w + (((o + q) * C + c) * kh + ky) * kw + kx);     \
                        acc[q][0] += wv * xv0;                                               \
                        acc[q][1] += wv * xv1;                                               \
                        acc[q][2] += wv * xv2;                                               \
                        acc[q][3] += wv * xv3;                                               \
                    }                                                                        \
                }                                                                            \
            }                                                                                \
        Py_ssize_t m = Wo - x0 < 4 * L ? Wo - x0 : 4 * L;                                    \
        for (int q = 0; q < OB; q++) {                                                       \
            T *dst = out + ((n * O + o + q) * Ho + y) * Wo + x0;                             \
            if (m == 4 * L)                                                                  \
                memcpy(dst, acc[q], sizeof(T) * 4 * L);                                      \
            else {                                                                           \
                T tmp[4 * L];                                                                \
                memcpy(tmp, acc[q], sizeof tmp);                                             \
                memcpy(dst, tmp, sizeof(T) * m);                                             \
            }                                                                                \
        }                                                                                    \
    }

DIRECT_KERNELS(float, f, vecf, veci, 8)
DIRECT_KERNELS(double, d, vecd, vecl, 4)

#pragma GCC pop_options

/* the 11 sizes, checked positive (the two pads: not negative). Any values are memory-safe:
 * the kernels read and write only inside the padded scratch and the checked arrays. */
static int direct_dims(PyObject *seq, Py_ssize_t *d)
{
    PyObject *fast = PySequence_Fast(seq, "_native: dims must be a sequence");
    if (!fast)
        return -1;
    int ok = PySequence_Fast_GET_SIZE(fast) == 11;
    for (int i = 0; ok && i < 11; i++)
        d[i] = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(fast, i));
    Py_DECREF(fast);
    if (PyErr_Occurred())
        return -1;
    for (int i = 0; ok && i < 11; i++)
        ok = d[i] >= (i == 7 || i == 8 ? 0 : 1);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "_native: conv2d_direct takes 11 sizes (N, C, H, W, O, "
                                          "kh, kw, top, left, Ho, Wo), pads >= 0, others > 0");
        return -1;
    }
    return 0;
}

/* multiply-adds from which the two halves of the images go to two threads (threads.c) */
#define DIRECT_SPLIT (1 << 20)

typedef struct {
    const void *x, *w, *b; /* w: the weight (forward) or the output gradient (wgrad) */
    void *out, *xp[2], *gp[2], *sum[2];
    const Py_ssize_t *d;
    Py_ssize_t Hp, Wp, Wg;
    int wgrad;
    char kind;
} DirectJob;

/* images [0, N/2) or [N/2, N): the forward's outputs, or the weight gradient's sums */
static void direct_half(void *arg, int half)
{
    const DirectJob *j = arg;
    Py_ssize_t mid = j->d[0] / 2, n0 = half ? mid : 0, n1 = half ? j->d[0] : mid;
    if (j->wgrad && j->kind == 'f')
        direct_wgrad_f(j->x, j->w, j->sum[half], j->d, j->xp[half], j->gp[half], j->Hp, j->Wp,
                       j->Wg, n0, n1);
    else if (j->wgrad)
        direct_wgrad_d(j->x, j->w, j->sum[half], j->d, j->xp[half], j->gp[half], j->Hp, j->Wp,
                       j->Wg, n0, n1);
    else if (j->kind == 'f')
        direct_fwd_f(j->x, j->w, j->b, j->out, j->d, j->xp[half], j->Hp, j->Wp, n0, n1);
    else
        direct_fwd_d(j->x, j->w, j->b, j->out, j->d, j->xp[half], j->Hp, j->Wp, n0, n1);
}

/* conv2d_direct(x, w, b, out, dims) and, with `wgrad`, conv2d_direct_wgrad(x, g, gw, dims) */
static PyObject *direct(PyObject *args, int wgrad)
{
    PyObject *o[4], *dims;
    if (!(wgrad ? PyArg_ParseTuple(args, "OOOO", &o[0], &o[1], &o[2], &dims)
                : PyArg_ParseTuple(args, "OOOOO", &o[0], &o[1], &o[2], &o[3], &dims)))
        return NULL;
    Py_ssize_t d[11];
    if (direct_dims(dims, d) < 0)
        return NULL;
    char k = kind_of(o[0]);
    if (!k)
        return NULL;
    Py_ssize_t nx = d[0] * d[1] * d[2] * d[3], nw = d[4] * d[1] * d[5] * d[6];
    Py_ssize_t ny = d[0] * d[4] * d[9] * d[10];
    static const char *const fwd_names[] = {"x", "weight", "bias", "out"};
    static const char *const wgrad_names[] = {"x", "grad", "grad_weight"};
    Py_ssize_t counts[] = {nx, wgrad ? ny : nw, wgrad ? nw : d[4], ny};
    Held h = {.n = 0};
    void *p[4];
    if (get_all(&h, o, wgrad ? wgrad_names : fwd_names, wgrad ? "rrw" : "rrRw", counts,
                wgrad ? 3 : 4, k, p) < 0)
        return NULL;
    /* padded extents: every read stays inside (the forward's blocks are 4 vectors wide, the
     * weight gradient's rows whole vectors) */
    size_t item = k == 'f' ? 4 : 8;
    Py_ssize_t block = (wgrad ? 32 : 128) / (Py_ssize_t)item;
    Py_ssize_t Hp = d[9] + d[5] - 1, Wg = (d[10] + block - 1) / block * block;
    Py_ssize_t Wp = Wg + d[6] - 1 + 8;
    /* per half of the images: the padded image, and for the weight gradient the padded
     * gradient rows and (half 1) its own sums, added to half 0's at the end */
    size_t nxp = (size_t)(d[1] * Hp * Wp), ngp = wgrad ? (size_t)(d[4] * d[9] * Wg) : 0;
    size_t per = nxp + ngp + (wgrad ? (size_t)nw : 0);
    char *scratch = malloc(2 * per * item);
    if (!scratch) {
        release_all(&h);
        return PyErr_NoMemory();
    }
    DirectJob job = {.x = p[0], .w = p[1], .b = p[2], .out = p[3], .d = d, .Hp = Hp, .Wp = Wp,
                     .Wg = Wg, .wgrad = wgrad, .kind = k};
    for (int i = 0; i < 2; i++) {
        job.xp[i] = scratch + i * per * item;
        job.gp[i] = (char *)job.xp[i] + nxp * item;
    }
    if (wgrad) { /* x, g, gw: half 0 sums into gw, half 1 into its scratch */
        job.w = p[1];
        job.sum[0] = p[2];
        job.sum[1] = (char *)job.gp[1] + ngp * item;
    }
    Py_BEGIN_ALLOW_THREADS
    if (d[0] > 1 && ny * d[1] * d[5] * d[6] >= DIRECT_SPLIT)
        run_halves(direct_half, &job);
    else {
        direct_half(&job, 0);
        direct_half(&job, 1);
    }
    if (wgrad && k == 'f')
        for (Py_ssize_t i = 0; i < nw; i++)
            ((float *)p[2])[i] += ((const float *)job.sum[1])[i];
    else if (wgrad)
        for (Py_ssize_t i = 0; i < nw; i++)
            ((double *)p[2])[i] += ((const double *)job.sum[1])[i];
    Py_END_ALLOW_THREADS
    free(scratch);
    release_all(&h);
    Py_RETURN_NONE;
}

PyObject *py_conv2d_direct(PyObject *self, PyObject *args) { return direct(args, 0); }
PyObject *py_conv2d_direct_wgrad(PyObject *self, PyObject *args) { return direct(args, 1); }
