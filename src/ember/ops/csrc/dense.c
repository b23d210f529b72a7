/* The dense layer at small batch: out = x W^T + b for a few rows (used by ember.ops.linalg).
 *
 * At batch 1-4 a BLAS call costs more in set-up than in arithmetic (NumPy's matmul plus the
 * bias add take ~3 us for a 40x256 layer that is 10,000 multiply-adds). Here each output is a
 * dot product of a contiguous weight row with the input row, four weight rows at a time so
 * that each input element loaded serves four of them; the compiler vectorizes the inner loop
 * (an omp simd reduction: lanes are summed in a different order than BLAS sums, so results
 * differ from NumPy's by rounding, as two BLAS builds do). */
#include "native.h"

#define DENSE_KERNELS(T, SUF)                                                                \
    /* outputs j0 <= j < j1 of each of the B rows (out is B x N) */                         \
    static void dense_rows_##SUF(const T *x, const T *w, const T *b, T *out, Py_ssize_t B,   \
                                 Py_ssize_t K, Py_ssize_t N, Py_ssize_t j0, Py_ssize_t j1)   \
    {                                                                                        \
        Py_ssize_t j = j0;                                                                   \
        for (; j + 4 <= j1; j += 4) {                                                         \
            const T *w0 = w + j * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;               \
            for (Py_ssize_t r = 0; r < B; r++) {                                             \
                const T *xr = x + r * K;                                                     \
                T s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                            \
                _Pragma("omp simd reduction(+:s0,s1,s2,s3)")                                 \
                for (Py_ssize_t k = 0; k < K; k++) {                                         \
                    T v = xr[k];                                                             \
                    s0 += w0[k] * v;                                                         \
                    s1 += w1[k] * v;                                                         \
                    s2 += w2[k] * v;                                                         \
                    s3 += w3[k] * v;                                                         \
                }                                                                            \
                T *o = out + r * N + j;                                                      \
                o[0] = b ? s0 + b[j] : s0;                                                   \
                o[1] = b ? s1 + b[j + 1] : s1;                                               \
                o[2] = b ? s2 + b[j + 2] : s2;                                               \
                o[3] = b ? s3 + b[j + 3] : s3;                                               \
            }                                                                                \
        }                                                                                    \
        for (; j < j1; j++) {                                                                \
            const T *wj = w + j * K;                                                         \
            for (Py_ssize_t r = 0; r < B; r++) {                                             \
                const T *xr = x + r * K;                                                     \
                T s = 0;                                                                     \
                _Pragma("omp simd reduction(+:s)")                                           \
                for (Py_ssize_t k = 0; k < K; k++)                                           \
                    s += wj[k] * xr[k];                                                      \
                out[r * N + j] = b ? s + b[j] : s;                                           \
            }                                                                                \
        }                                                                                    \
    }

DENSE_KERNELS(float, f)
DENSE_KERNELS(double, d)

/* above this many multiply-adds the two halves of the outputs go to two threads (threads.c) */
#define DENSE_SPLIT (1 << 16)

typedef struct {
    const void *x, *w, *b;
    void *out;
    Py_ssize_t B, K, N, half;
    char kind;
} DenseJob;

static void dense_part(void *arg, int part)
{
    DenseJob *j = arg;
    Py_ssize_t j0 = part ? j->half : 0, j1 = part ? j->N : j->half;
    if (j->kind == 'f')
        dense_rows_f(j->x, j->w, j->b, j->out, j->B, j->K, j->N, j0, j1);
    else
        dense_rows_d(j->x, j->w, j->b, j->out, j->B, j->K, j->N, j0, j1);
}

PyObject *py_dense_rows(PyObject *self, PyObject *args)
{
    PyObject *o[4];
    Py_ssize_t B, K, N;
    if (!PyArg_ParseTuple(args, "OOOOnnn", &o[0], &o[1], &o[2], &o[3], &B, &K, &N))
        return NULL;
    if (B < 1 || K < 1 || N < 1) {
        PyErr_SetString(PyExc_ValueError, "_native: dense_rows sizes must be positive");
        return NULL;
    }
    char k = kind_of(o[0]);
    if (!k)
        return NULL;
    Held h = {.n = 0};
    static const char *const names[] = {"x", "weight", "bias", "out"};
    Py_ssize_t counts[] = {B * K, N * K, N, B * N};
    void *p[4];
    if (get_all(&h, o, names, "rrRw", counts, 4, k, p) < 0)
        return NULL;
    DenseJob job = {p[0], p[1], p[2], p[3], B, K, N, N, k};
    Py_BEGIN_ALLOW_THREADS
    if (B * K * N >= DENSE_SPLIT && N >= 16) {
        job.half = N / 8 * 4; /* a multiple of 4: each half runs whole blocks */
        run_halves(dense_part, &job);
    } else
        dense_part(&job, 0);
    Py_END_ALLOW_THREADS
    release_all(&h);
    Py_RETURN_NONE;
}
