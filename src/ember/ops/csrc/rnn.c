/* Recurrent kernels: the LSTM cell (a step, forward and backward) and a whole small-batch
 * LSTM sequence without a graph (used by ember.ops.rnn). */
#include "native.h"

/* ------------------------------------------------------------------------------ LSTM cell */
/* One time step for `rows` rows (batch) of hidden size H. mm = h W_hh^T and x (the input
 * projection, b_ih included) are in PyTorch's gate order i, f, g, o, b = b_hh (or NULL);
 * the activations are saved in the order i, f, o, g (the sigmoid gates side by side):
 *   forward:  v = mm + x + b;  i, f, o = 1/(1+exp(-v));  g = tanh(v);
 *             c' = f c + i g,  t = tanh(c'),  out = o t
 *   backward: d = dc + dm o (1 - t^2);  dpre (public order i, f, g, o) =
 *             [d i(1-i) g, d f(1-f) c, d (1-g^2) i, dm o(1-o) t];  dc <- d f
 * c and c' may be the same array (inference updates c in place). */
/* float32 tanh as 1 - 2 / (exp(2x) + 1): libmvec's exp runs twice as fast as its tanh, and
 * the absolute error stays within 2^-23 of the result's scale 1 (the relative error of a tiny
 * tanh is larger, but an LSTM only adds these values to others of order 1); inf and NaN as
 * tanhf: exp(2x) = inf gives 1, 0 gives -1, NaN stays NaN. float64 keeps libmvec's tanh. */
#pragma omp declare simd notinbranch
static inline float tanh_via_exp(float x) { return 1.0f - 2.0f / (expf(2.0f * x) + 1.0f); }

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

LSTM_KERNELS(float, f, expf, tanh_via_exp)
LSTM_KERNELS(double, d, exp, tanh)

PyObject *py_lstm_fwd(PyObject *self, PyObject *args)
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

PyObject *py_lstm_bwd(PyObject *self, PyObject *args)
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

/* --------------------------------------------------------------- LSTM, small-batch inference */
/* A whole sequence of one LSTM direction without a graph, for small batches, where a BLAS call
 * per step costs more than the product: the gates' products as dot products over the weights'
 * contiguous rows, then the cell as in lstm_fwd. hs (T + 1, B, H) holds h0 in hs[0] and
 * receives every step's output in processing order; c (B, H) is updated in place.
 *
 * The input enters either as its projection X (T, B, 4H), in PyTorch's gate order i, f, g, o,
 * or raw, as x (T, B, I) with W_ih (4H, I): then the projection is made step by step here too
 * (no separate GEMM, which would wake OpenBLAS's threads and keep the second core from the
 * helper below). Each step is computed as two halves of the hidden units, on two threads when
 * the step is large enough (seq_part). */
#define LSTM_SEQ_KERNEL(T, SUF, EXP, TANH)                                                   \
    /* g[q] += w[q] . v for the rows q0 <= q < q1 of w (K columns) */                        \
    static void gate_rows_##SUF(const T *w, const T *v, Py_ssize_t K, T *g, Py_ssize_t q0,   \
                                Py_ssize_t q1)                                               \
    {                                                                                        \
        /* eight rows at a time: eight independent sums in flight (an add's latency, not   \
         * the loads, limits one sum); the rest one row at a time */                         \
        Py_ssize_t q = q0;                                                                   \
        for (; q + 8 <= q1; q += 8) {                                                        \
            const T *w0 = w + q * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;               \
            const T *w4 = w3 + K, *w5 = w4 + K, *w6 = w5 + K, *w7 = w6 + K;                  \
            T a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;                \
            _Pragma("omp simd reduction(+:a0, a1, a2, a3, a4, a5, a6, a7)")                  \
            for (Py_ssize_t j = 0; j < K; j++) {                                             \
                T vj = v[j];                                                                 \
                a0 += w0[j] * vj;                                                            \
                a1 += w1[j] * vj;                                                            \
                a2 += w2[j] * vj;                                                            \
                a3 += w3[j] * vj;                                                            \
                a4 += w4[j] * vj;                                                            \
                a5 += w5[j] * vj;                                                            \
                a6 += w6[j] * vj;                                                            \
                a7 += w7[j] * vj;                                                            \
            }                                                                                \
            T sums[8] = {a0, a1, a2, a3, a4, a5, a6, a7};                                    \
            for (int u = 0; u < 8; u++)                                                      \
                g[q + u] += sums[u];                                                         \
        }                                                                                    \
        for (; q < q1; q++) {                                                                \
            T acc = 0;                                                                       \
            _Pragma("omp simd reduction(+:acc)")                                             \
            for (Py_ssize_t j = 0; j < K; j++)                                               \
                acc += w[q * K + j] * v[j];                                                  \
            g[q] += acc;                                                                     \
        }                                                                                    \
    }                                                                                        \
    /* step s of the sequence for the hidden units u0 <= j < u1 (every batch row): their     \
     * four gates' rows, then their cells */                                                 \
    static void lstm_seq_step_##SUF(const T *X, const T *xin, const T *wih, Py_ssize_t I,    \
                                    const T *w, const T *b, T *hs, T *c, T *g, Py_ssize_t s, \
                                    Py_ssize_t steps, Py_ssize_t B, Py_ssize_t H,             \
                                    int reverse, Py_ssize_t u0, Py_ssize_t u1)               \
    {                                                                                        \
        Py_ssize_t t = reverse ? steps - 1 - s : s;                                          \
        for (Py_ssize_t r = 0; r < B; r++) {                                                 \
            const T *h = hs + (s * B + r) * H;                                               \
            const T *xr = X ? X + (t * B + r) * 4 * H : NULL;                                \
            T *gr = g + r * 4 * H;                                                           \
            for (int gate = 0; gate < 4; gate++) {                                           \
                Py_ssize_t q0 = gate * H + u0, q1 = gate * H + u1;                           \
                for (Py_ssize_t q = q0; q < q1; q++)                                         \
                    gr[q] = (xr ? xr[q] : (T)0) + (b ? b[q] : (T)0);                         \
                if (xin)                                                                     \
                    gate_rows_##SUF(wih, xin + (t * B + r) * I, I, gr, q0, q1);             \
                gate_rows_##SUF(w, h, H, gr, q0, q1);                                        \
            }                                                                                \
            T *cr = c + r * H, *hn = hs + ((s + 1) * B + r) * H;                             \
            _Pragma("omp simd")                                                              \
            for (Py_ssize_t j = u0; j < u1; j++) {                                           \
                T i = (T)1 / ((T)1 + EXP(-gr[j]));                                           \
                T f = (T)1 / ((T)1 + EXP(-gr[H + j]));                                       \
                T gg = TANH(gr[2 * H + j]);                                                  \
                T o = (T)1 / ((T)1 + EXP(-gr[3 * H + j]));                                   \
                T cv = f * cr[j] + i * gg;                                                   \
                cr[j] = cv;                                                                  \
                hn[j] = o * TANH(cv);                                                        \
            }                                                                                \
        }                                                                                    \
    }

LSTM_SEQ_KERNEL(float, f, expf, tanh_via_exp)
LSTM_SEQ_KERNEL(double, d, exp, tanh)

/* One step of lstm_seq as two halves of the hidden units (threads.c): each half's gates and
 * cells need only the previous step's whole h, so the halves meet once per step. */
#define SEQ_SPLIT (1 << 14) /* multiply-adds per step: above this two threads share a step */
typedef struct {
    void *p[7], *g; /* X, w_hh, bias, hs, c, x, w_ih (X or x and w_ih may be NULL) */
    Py_ssize_t s, steps, B, H, I, half;
    int reverse;
    char kind;
} SeqJob;

static void seq_part(void *arg, int part)
{
    const SeqJob *j = arg;
    Py_ssize_t u0 = part ? j->half : 0, u1 = part ? j->H : j->half;
    void *const *p = j->p;
    if (j->kind == 'f')
        lstm_seq_step_f(p[0], p[5], p[6], j->I, p[1], p[2], p[3], p[4], j->g, j->s, j->steps,
                        j->B, j->H, j->reverse, u0, u1);
    else
        lstm_seq_step_d(p[0], p[5], p[6], j->I, p[1], p[2], p[3], p[4], j->g, j->s, j->steps,
                        j->B, j->H, j->reverse, u0, u1);
}

PyObject *py_lstm_seq(PyObject *self, PyObject *args)
{
    PyObject *o[7] = {NULL, NULL, NULL, NULL, NULL, Py_None, Py_None};
    Py_ssize_t steps, B, H, I = 0;
    int reverse;
    if (!PyArg_ParseTuple(args, "OOOOOnnnp|OOn", &o[0], &o[1], &o[2], &o[3], &o[4], &steps, &B,
                          &H, &reverse, &o[5], &o[6], &I))
        return NULL;
    int raw = o[5] != Py_None;
    if (steps < 1 || B < 1 || H < 1 || (raw && (o[6] == Py_None || I < 1)) ||
        (!raw && o[0] == Py_None)) {
        PyErr_SetString(PyExc_ValueError, "_native: lstm_seq takes positive sizes and the "
                                          "projection x, or the raw input with w_ih and I");
        return NULL;
    }
    char k = kind_of(o[3]);
    if (!k)
        return NULL;
    Held h = {.n = 0};
    static const char *const names[] = {"x", "w_hh", "bias", "hs", "c", "input", "w_ih"};
    Py_ssize_t counts[] = {steps * B * 4 * H, 4 * H * H, 4 * H, (steps + 1) * B * H, B * H,
                           steps * B * I, 4 * H * I};
    void *p[7];
    if (get_all(&h, o, names, "RrRwwRR", counts, 7, k, p) < 0)
        return NULL;
    void *g = malloc((size_t)(4 * H * B) * (k == 'f' ? 4 : 8)); /* each row's gates */
    if (!g) {
        release_all(&h);
        return PyErr_NoMemory();
    }
    SeqJob job = {{p[0], p[1], p[2], p[3], p[4], p[5], p[6]}, g, 0, steps, B, H, I, H,
                  reverse, k};
    int halves = 4 * H * (H + I) * B >= SEQ_SPLIT && H >= 2;
    if (halves)
        job.half = H / 2;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t s = 0; s < steps; s++) {
        job.s = s;
        if (halves)
            run_halves(seq_part, &job);
        else
            seq_part(&job, 0);
    }
    Py_END_ALLOW_THREADS
    free(g);
    release_all(&h);
    Py_RETURN_NONE;
}
