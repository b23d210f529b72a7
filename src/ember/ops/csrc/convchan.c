/* Direct 2-D convolution vectorized over the output channels (used by ember.ops.conv).
 *
 *   out[n, o, oy, ox] = b[o] + sum over taps t = (c, ky, kx) of w[o, t] xp[n, c, iy, ix],
 *   iy = oy sh + ky dh, ix = ox sw + kx dw, xp = x zero-padded (ph rows on top, pw on the left)
 *
 * This is the GEMM of the unfold path (weights (O, K) times columns (K, pixels)) without the
 * columns: a pixel's K inputs are read from the padded image at the pixel's corner plus each
 * tap's offset (toff[t]). A tile of pixels x vectors of output channels (12 vector sums: 12 x 1,
 * 6 x 2, 4 x 3 or 3 x 4) stays in registers while every tap loads one weight vector per channel
 * vector and broadcasts one input value per pixel. LeNet's second layer (16 channels, 150 taps)
 * makes a 16-row GEMM after a 4 MB unfold at batch 64; here it is the same multiply-adds with no
 * copy, at about four times the unfold and GEMM's speed per core. The weight gradient is the
 * same product the other way round: a tile of taps x channel vectors summed over the pixels,
 * with the output gradient transposed to pixel-major order a run of pixels at a time.
 *
 * The pixels are split in two halves between the caller and the helper thread (threads.c); the
 * weight gradient sums each half separately and adds the two halves in a fixed order, so the
 * result does not depend on which thread ran what. Written with GCC's vector extension (no
 * intrinsics) and built with fused multiply-add, like convdirect.c: sums are in a different
 * order than the GEMM path's, and both are checked against PyTorch. */
#include "native.h"
#include "simd.h"

#pragma GCC push_options
#pragma GCC optimize("fp-contract=fast")

#define CHAN_MAXV 4    /* channel vectors in one tile */
/* pixels (forward) or taps (weight gradient) in a tile of 1, 2, 3 or 4 channel vectors: as
 * many vector sums as leave registers for the operands (16 vector registers) */
static const int CHAN_TILE[] = {0, 12, 6, 4, 3};
#define CHAN_CHUNK 128 /* pixels per run: the forward's output tile, the weight gradient's
                          * transposed gradient */
#define CHAN_SPLIT 1e6 /* multiply-adds from which the two halves go to two threads */

/* The geometry (the 15 sizes of conv.c's conv2d_small: N, C, H, W, O, kh, kw, sh, sw, ph, pw,
 * dh, dw, Ho, Wo) and what both kernels derive from it. */
typedef struct {
    Py_ssize_t N, C, H, W, O, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo;
    Py_ssize_t Hp, Wp;  /* rows and columns of the image the kernels read */
    Py_ssize_t K, P;    /* taps C kh kw; pixels N Ho Wo */
    Py_ssize_t nv;      /* channel vectors: ceil(O / lanes) */
    Py_ssize_t *toff;   /* K tap offsets in the padded image */
    int padded;         /* the kernels read a zero-padded copy of x (else x itself) */
} Geom;

/* a pixel's position, stepped along the flattened (n, oy, ox) grid */
typedef struct {
    Py_ssize_t n, oy, ox;
} Cursor;

static inline void cursor_at(Cursor *c, const Geom *g, Py_ssize_t p)
{
    c->n = p / (g->Ho * g->Wo);
    p -= c->n * g->Ho * g->Wo;
    c->oy = p / g->Wo;
    c->ox = p - c->oy * g->Wo;
}

static inline void cursor_next(Cursor *c, const Geom *g)
{
    if (++c->ox == g->Wo) {
        c->ox = 0;
        if (++c->oy == g->Ho) {
            c->oy = 0;
            c->n++;
        }
    }
}

/* offset of the pixel's first tap in the padded image */
static inline Py_ssize_t cursor_in(const Cursor *c, const Geom *g)
{
    return (c->n * g->C * g->Hp + c->oy * g->sh) * g->Wp + c->ox * g->sw;
}

/* The run of pixels from p on that lie in p's image, before p1, and fit a chunk: its length,
 * and each pixel's corner in the padded image in at[] */
static inline Py_ssize_t run_corners(const Geom *g, Py_ssize_t p, Py_ssize_t p1, Py_ssize_t *at)
{
    Py_ssize_t plane = g->Ho * g->Wo, end = (p / plane + 1) * plane;
    if (end > p1)
        end = p1;
    Py_ssize_t len = end - p < CHAN_CHUNK ? end - p : CHAN_CHUNK;
    Cursor c;
    cursor_at(&c, g, p);
    for (Py_ssize_t q = 0; q < len; q++, cursor_next(&c, g))
        at[q] = cursor_in(&c, g);
    return len;
}

#define CHAN_KERNELS(T, SUF, V, L)                                                           \
    /* x into xp (N, C, Hp, Wp) with zeros around */                                         \
    static void pad_all_##SUF(const Geom *g, const T *x, T *xp)                              \
    {                                                                                        \
        memset(xp, 0, sizeof(T) * g->N * g->C * g->Hp * g->Wp);                              \
        Py_ssize_t rows = g->H < g->Hp - g->ph ? g->H : g->Hp - g->ph;                       \
        Py_ssize_t cols = g->W < g->Wp - g->pw ? g->W : g->Wp - g->pw;                       \
        if (rows <= 0 || cols <= 0) /* (only padding is read: a large pad and stride) */     \
            return;                                                                          \
        for (Py_ssize_t i = 0; i < g->N * g->C; i++)                                         \
            for (Py_ssize_t r = 0; r < rows; r++)                                            \
                memcpy(xp + (i * g->Hp + r + g->ph) * g->Wp + g->pw,                         \
                       x + (i * g->H + r) * g->W, sizeof(T) * cols);                         \
    }                                                                                        \
    /* forward: np <= PX pixels (corners at[p]) x OV channel vectors into buf (a row of OV   \
     * vectors per pixel); wp holds this block's weights (K, OV, L), bias its OV vectors */  \
    static inline __attribute__((always_inline)) void fwd_tile_##SUF(                        \
        const Geom *g, const T *xp, const Py_ssize_t *at, int np, const T *wp, const T *bias, \
        T *buf, const int OV, const int PX)                                                  \
    {                                                                                        \
        V acc[12];                                                                           \
        const T *base[12];                                                                   \
        _Pragma("GCC unroll 12") for (int p = 0; p < PX; p++)                                \
        {                                                                                    \
            base[p] = xp + at[p < np ? p : np - 1];                                          \
            _Pragma("GCC unroll 4") for (int j = 0; j < OV; j++)                             \
                acc[p * OV + j] = loadv_##SUF(bias + j * L);                                 \
        }                                                                                    \
        const Py_ssize_t *toff = g->toff;                                                    \
        for (Py_ssize_t t = 0; t < g->K; t++) {                                              \
            const T *wt = wp + t * OV * L;                                                   \
            Py_ssize_t off = toff[t];                                                        \
            _Pragma("GCC unroll 12") for (int p = 0; p < PX; p++)                            \
            {                                                                                \
                V xv = splat_##SUF(base[p] + off);                                           \
                _Pragma("GCC unroll 4") for (int j = 0; j < OV; j++)                         \
                    acc[p * OV + j] += xv * loadv_##SUF(wt + j * L);                         \
            }                                                                                \
        }                                                                                    \
        for (int p = 0; p < np; p++)                                                         \
            memcpy(buf + p * OV * L, &acc[p * OV], sizeof(V) * OV);                          \
    }                                                                                        \
    /* forward over pixels [p0, p1), in runs inside one image: each channel block's tiles    \
     * into buf (pixel-major), then buf into the output (channel-major: contiguous rows, not \
     * one store per channel plane and pixel, whose planes can alias in the cache) */        \
    static void fwd_range_##SUF(const Geom *g, const T *xp, const T *wpack, const T *bias,   \
                                T *out, T *buf, Py_ssize_t p0, Py_ssize_t p1)                \
    {                                                                                        \
        Py_ssize_t plane = g->Ho * g->Wo, at[CHAN_CHUNK];                                    \
        for (Py_ssize_t p = p0; p < p1;) {                                                   \
            Py_ssize_t n = p / plane, r = p - n * plane, len = run_corners(g, p, p1, at);    \
            for (Py_ssize_t v0 = 0; v0 < g->nv; v0 += CHAN_MAXV) {                           \
                int ov = g->nv - v0 < CHAN_MAXV ? (int)(g->nv - v0) : CHAN_MAXV;             \
                int px = CHAN_TILE[ov];                                                      \
                const T *wp = wpack + g->K * L * v0, *bv = bias + v0 * L;                    \
                for (Py_ssize_t q = 0; q < len; q += px) {                                   \
                    int np = len - q < px ? (int)(len - q) : px;                             \
                    T *bq = buf + q * ov * L;                                                \
                    switch (ov) {                                                            \
                    case 1: fwd_tile_##SUF(g, xp, at + q, np, wp, bv, bq, 1, 12); break;     \
                    case 2: fwd_tile_##SUF(g, xp, at + q, np, wp, bv, bq, 2, 6); break;      \
                    case 3: fwd_tile_##SUF(g, xp, at + q, np, wp, bv, bq, 3, 4); break;      \
                    default: fwd_tile_##SUF(g, xp, at + q, np, wp, bv, bq, 4, 3); break;     \
                    }                                                                        \
                }                                                                            \
                Py_ssize_t o1 = (v0 + ov) * L < g->O ? (v0 + ov) * L : g->O;                 \
                for (Py_ssize_t o = v0 * L; o < o1; o++) {                                   \
                    T *dst = out + (n * g->O + o) * plane + r;                               \
                    const T *src = buf + (o - v0 * L);                                       \
                    for (Py_ssize_t q = 0; q < len; q++)                                     \
                        dst[q] = src[q * ov * L];                                            \
                }                                                                            \
            }                                                                                \
            p += len;                                                                        \
        }                                                                                    \
    }                                                                                        \
    /* weight gradient: sum[t0 + t][v0 + j] += sum over the chunk's pixels of gt[p][v0 + j] \
     * xp[at[p] + toff[t0 + t]], for TB taps x OV channel vectors */                         \
    static inline __attribute__((always_inline)) void wgrad_tile_##SUF(                      \
        const Geom *g, const T *xp, const Py_ssize_t *at, Py_ssize_t np, const T *gt,        \
        T *sum, Py_ssize_t t0, Py_ssize_t v0, const int OV, const int TB)                    \
    {                                                                                        \
        V acc[12];                                                                           \
        Py_ssize_t off[12];                                                                  \
        _Pragma("GCC unroll 12") for (int t = 0; t < TB; t++)                                \
        {                                                                                    \
            off[t] = g->toff[t0 + t];                                                        \
            _Pragma("GCC unroll 4") for (int j = 0; j < OV; j++) acc[t * OV + j] = (V){0};   \
        }                                                                                    \
        Py_ssize_t row = g->nv * L;                                                          \
        for (Py_ssize_t p = 0; p < np; p++) {                                                \
            const T *xb = xp + at[p], *gp = gt + p * row + v0 * L;                           \
            _Pragma("GCC unroll 12") for (int t = 0; t < TB; t++)                            \
            {                                                                                \
                V xv = splat_##SUF(xb + off[t]);                                             \
                _Pragma("GCC unroll 4") for (int j = 0; j < OV; j++)                         \
                    acc[t * OV + j] += xv * loadv_##SUF(gp + j * L);                         \
            }                                                                                \
        }                                                                                    \
        for (int t = 0; t < TB; t++)                                                         \
            for (int j = 0; j < OV; j++) {                                                   \
                T *s = sum + (t0 + t) * row + (v0 + j) * L;                                  \
                V v = loadv_##SUF(s) + acc[t * OV + j];                                      \
                memcpy(s, &v, sizeof v);                                                     \
            }                                                                                \
    }                                                                                        \
    WGRAD_DISPATCH(T, SUF)                                                                   \
    /* weight gradient over pixels [p0, p1) into sum (K, nv L), in runs inside one image:    \
     * the run's gradient transposed into gt (CHAN_CHUNK, nv L), then every tap block */     \
    static void wgrad_range_##SUF(const Geom *g, const T *xp, const T *grad, T *gt, T *sum,  \
                                  Py_ssize_t p0, Py_ssize_t p1)                              \
    {                                                                                        \
        Py_ssize_t row = g->nv * L, plane = g->Ho * g->Wo, at[CHAN_CHUNK];                   \
        for (Py_ssize_t p = p0; p < p1;) {                                                   \
            Py_ssize_t n = p / plane, r = p - n * plane, len = run_corners(g, p, p1, at);    \
            if (g->O < row)                                                                  \
                memset(gt, 0, sizeof(T) * len * row);                                        \
            for (Py_ssize_t o = 0; o < g->O; o++) {                                          \
                const T *src = grad + (n * g->O + o) * plane + r;                            \
                for (Py_ssize_t q = 0; q < len; q++)                                         \
                    gt[q * row + o] = src[q];                                                \
            }                                                                                \
            for (Py_ssize_t v0 = 0; v0 < g->nv; v0 += CHAN_MAXV) {                           \
                int ov = g->nv - v0 < CHAN_MAXV ? (int)(g->nv - v0) : CHAN_MAXV;             \
                int most = CHAN_TILE[ov]; /* taps per block, spread evenly over the blocks */\
                Py_ssize_t blocks = (g->K + most - 1) / most;                                \
                for (Py_ssize_t t0 = 0, b = 0; b < blocks; b++) {                            \
                    int tb = (int)((g->K - t0) / (blocks - b));                              \
                    wgrad_block_##SUF(g, xp, at, len, gt, sum, t0, v0, ov, tb);              \
                    t0 += tb;                                                                \
                }                                                                            \
            }                                                                                \
            p += len;                                                                        \
        }                                                                                    \
    }

/* one call of wgrad_tile with constant OV and TB (ov * tb <= 12), so its sums stay in registers */
#define WG_CASE(SUF, OV, TB)                                                                 \
    case OV * 16 + TB:                                                                       \
        wgrad_tile_##SUF(g, xp, at, np, gt, sum, t0, v0, OV, TB);                            \
        break;
#define WGRAD_DISPATCH(T, SUF)                                                               \
    static void wgrad_block_##SUF(const Geom *g, const T *xp, const Py_ssize_t *at,          \
                                  Py_ssize_t np, const T *gt, T *sum, Py_ssize_t t0,         \
                                  Py_ssize_t v0, int ov, int tb)                             \
    {                                                                                        \
        switch (ov * 16 + tb) {                                                              \
            WG_CASE(SUF, 1, 1) WG_CASE(SUF, 1, 2) WG_CASE(SUF, 1, 3) WG_CASE(SUF, 1, 4)      \
            WG_CASE(SUF, 1, 5) WG_CASE(SUF, 1, 6) WG_CASE(SUF, 1, 7) WG_CASE(SUF, 1, 8)      \
            WG_CASE(SUF, 1, 9) WG_CASE(SUF, 1, 10) WG_CASE(SUF, 1, 11) WG_CASE(SUF, 1, 12)   \
            WG_CASE(SUF, 2, 1) WG_CASE(SUF, 2, 2) WG_CASE(SUF, 2, 3) WG_CASE(SUF, 2, 4)      \
            WG_CASE(SUF, 2, 5) WG_CASE(SUF, 2, 6) WG_CASE(SUF, 3, 1) WG_CASE(SUF, 3, 2)      \
            WG_CASE(SUF, 3, 3) WG_CASE(SUF, 3, 4) WG_CASE(SUF, 4, 1) WG_CASE(SUF, 4, 2)      \
            WG_CASE(SUF, 4, 3)                                                               \
        }                                                                                    \
    }

CHAN_KERNELS(float, f, vecf, 8)
CHAN_KERNELS(double, d, vecd, 4)

#pragma GCC pop_options

/* ------------------------------------------------------------------------ the two halves */
typedef struct {
    const Geom *g;
    const void *xp, *w, *b, *grad; /* w: packed weights (forward) */
    void *out, *buf[2], *sum[2];   /* out: the output (forward); per half: a run's pixel-major
                                    * outputs or gradient, and the weight gradient's sums */
    char kind;
} ChanJob;

static void chan_half(void *arg, int half)
{
    const ChanJob *j = arg;
    const Geom *g = j->g;
    Py_ssize_t mid = g->P / 2, p0 = half ? mid : 0, p1 = half ? g->P : mid;
    if (j->grad && j->kind == 'f')
        wgrad_range_f(g, j->xp, j->grad, j->buf[half], j->sum[half], p0, p1);
    else if (j->grad)
        wgrad_range_d(g, j->xp, j->grad, j->buf[half], j->sum[half], p0, p1);
    else if (j->kind == 'f')
        fwd_range_f(g, j->xp, j->w, j->b, j->out, j->buf[half], p0, p1);
    else
        fwd_range_d(g, j->xp, j->w, j->b, j->out, j->buf[half], p0, p1);
}

/* The geometry from the 15 sizes; toff and the padded extents. 0 with an exception set. */
static int chan_geom(Geom *g, PyObject *dims, int lanes)
{
    Py_ssize_t d[15];
    if (conv_dims(dims, d, "conv2d_chan") < 0)
        return 0;
    Py_ssize_t *f = &g->N;
    for (int i = 0; i < 15; i++)
        f[i] = d[i];
    /* the image the kernels read: every tap of every output pixel lies inside it */
    g->Hp = (g->Ho - 1) * g->sh + (g->kh - 1) * g->dh + 1;
    g->Wp = (g->Wo - 1) * g->sw + (g->kw - 1) * g->dw + 1;
    g->padded = g->ph || g->pw || g->Hp > g->H || g->Wp > g->W;
    if (!g->padded) { /* x itself, read in place */
        g->Hp = g->H;
        g->Wp = g->W;
    }
    g->K = g->C * g->kh * g->kw;
    g->P = g->N * g->Ho * g->Wo;
    g->nv = (g->O + lanes - 1) / lanes;
    g->toff = malloc(sizeof(Py_ssize_t) * g->K);
    if (!g->toff) {
        PyErr_NoMemory();
        return 0;
    }
    for (Py_ssize_t c = 0, t = 0; c < g->C; c++)
        for (Py_ssize_t ky = 0; ky < g->kh; ky++)
            for (Py_ssize_t kx = 0; kx < g->kw; kx++)
                g->toff[t++] = (c * g->Hp + ky * g->dh) * g->Wp + kx * g->dw;
    return 1;
}

#define CHAN_PACK(T, SUF)                                                                    \
    /* w (O, K) as (K, L) per channel vector, blocks of CHAN_MAXV vectors, zeros past O;     \
     * bias as nv L values */                                                                \
    static void pack_##SUF(const Geom *g, const T *w, const T *b, T *wpack, T *bias, int L)  \
    {                                                                                        \
        for (Py_ssize_t v0 = 0; v0 < g->nv; v0 += CHAN_MAXV) {                               \
            Py_ssize_t ov = g->nv - v0 < CHAN_MAXV ? g->nv - v0 : CHAN_MAXV;                 \
            T *blk = wpack + g->K * L * v0;                                                  \
            for (Py_ssize_t t = 0; t < g->K; t++)                                            \
                for (Py_ssize_t i = 0; i < ov * L; i++) {                                    \
                    Py_ssize_t o = v0 * L + i;                                               \
                    blk[t * ov * L + i] = o < g->O ? w[o * g->K + t] : 0;                    \
                }                                                                            \
        }                                                                                    \
        for (Py_ssize_t o = 0; o < g->nv * L; o++)                                           \
            bias[o] = b && o < g->O ? b[o] : 0;                                              \
    }                                                                                        \
    /* gw (O, K) = sum0 + sum1, each (K, nv L) */                                            \
    static void unpack_##SUF(const Geom *g, const T *sum0, const T *sum1, T *gw, int L)      \
    {                                                                                        \
        Py_ssize_t row = g->nv * L;                                                          \
        for (Py_ssize_t o = 0; o < g->O; o++)                                                \
            for (Py_ssize_t t = 0; t < g->K; t++)                                            \
                gw[o * g->K + t] = sum0[t * row + o] + sum1[t * row + o];                    \
    }

CHAN_PACK(float, f)
CHAN_PACK(double, d)

/* conv2d_chan(x, w, b, out, dims) and, with `wgrad`, conv2d_chan_wgrad(x, g, gw, dims) */
static PyObject *chan(PyObject *args, int wgrad)
{
    PyObject *o[4], *dims;
    if (!(wgrad ? PyArg_ParseTuple(args, "OOOO", &o[0], &o[1], &o[2], &dims)
                : PyArg_ParseTuple(args, "OOOOO", &o[0], &o[1], &o[2], &o[3], &dims)))
        return NULL;
    char k = kind_of(o[0]);
    if (!k)
        return NULL;
    int L = k == 'f' ? 8 : 4;
    size_t item = k == 'f' ? 4 : 8;
    Geom g;
    if (!chan_geom(&g, dims, L))
        return NULL;
    Py_ssize_t nx = g.N * g.C * g.H * g.W, nw = g.O * g.K, ny = g.P * g.O;
    static const char *const fwd_names[] = {"x", "weight", "bias", "out"};
    static const char *const wgrad_names[] = {"x", "grad", "grad_weight"};
    Py_ssize_t counts[] = {nx, wgrad ? ny : nw, wgrad ? nw : g.O, ny};
    Held h = {.n = 0};
    void *p[4];
    if (get_all(&h, o, wgrad ? wgrad_names : fwd_names, wgrad ? "rrw" : "rrRw", counts,
                wgrad ? 3 : 4, k, p) < 0) {
        free(g.toff);
        return NULL;
    }
    /* scratch: the padded image; per half a run buffer (CHAN_CHUNK rows of a tile's channel
     * vectors, or of all of them) and the weight gradient's sums; the packed weights and bias */
    size_t nxp = g.padded ? (size_t)(g.N * g.C * g.Hp * g.Wp) : 0, row = (size_t)(g.nv * L);
    size_t nbuf = CHAN_CHUNK * row, nsum = wgrad ? (size_t)g.K * row : 0;
    size_t nscratch = 2 * (nbuf + nsum) + (wgrad ? 0 : (size_t)g.K * row + row);
    char *scratch = malloc((nxp + nscratch) * item);
    if (!scratch) {
        free(g.toff);
        release_all(&h);
        return PyErr_NoMemory();
    }
    void *xp = g.padded ? (void *)scratch : p[0];
    char *s = scratch + nxp * item;
    ChanJob job = {.g = &g, .xp = xp, .kind = k};
    for (int i = 0; i < 2; i++) {
        job.buf[i] = s + i * (nbuf + nsum) * item;
        job.sum[i] = (char *)job.buf[i] + nbuf * item;
    }
    s += 2 * (nbuf + nsum) * item;
    Py_BEGIN_ALLOW_THREADS
    if (g.padded && k == 'f')
        pad_all_f(&g, p[0], xp);
    else if (g.padded)
        pad_all_d(&g, p[0], xp);
    if (wgrad) {
        job.grad = p[1];
        memset(job.sum[0], 0, nsum * item);
        memset(job.sum[1], 0, nsum * item);
    } else {
        job.w = s;
        job.b = s + (size_t)g.K * row * item;
        job.out = p[3];
        if (k == 'f')
            pack_f(&g, p[1], p[2], (float *)job.w, (float *)job.b, L);
        else
            pack_d(&g, p[1], p[2], (double *)job.w, (double *)job.b, L);
    }
    if ((double)g.P * g.K * g.O >= CHAN_SPLIT)
        run_halves(chan_half, &job);
    else { /* too small to be worth waking the helper */
        chan_half(&job, 0);
        chan_half(&job, 1);
    }
    if (wgrad && k == 'f')
        unpack_f(&g, job.sum[0], job.sum[1], p[2], L);
    else if (wgrad)
        unpack_d(&g, job.sum[0], job.sum[1], p[2], L);
    Py_END_ALLOW_THREADS
    free(scratch);
    free(g.toff);
    release_all(&h);
    Py_RETURN_NONE;
}

PyObject *py_conv2d_chan(PyObject *self, PyObject *args) { return chan(args, 0); }
PyObject *py_conv2d_chan_wgrad(PyObject *self, PyObject *args) { return chan(args, 1); }
