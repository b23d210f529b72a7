/* Shared by the sources of ember.ops._native (see module.c): includes, glibc's vector math,
 * argument helpers and the Python-facing functions of each family of kernels. */
#ifndef EMBER_NATIVE_H
#define EMBER_NATIVE_H
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* glibc's libmvec has vector versions of these: with -fno-math-errno and -fopenmp-simd GCC calls
 * them from vectorized loops (8 floats at a time with AVX2) */
#pragma omp declare simd notinbranch
extern float expf(float);
#pragma omp declare simd notinbranch
extern float tanhf(float);
#pragma omp declare simd notinbranch
extern float logf(float);
#pragma omp declare simd notinbranch
extern double exp(double);
#pragma omp declare simd notinbranch
extern double tanh(double);

/* The buffers one call holds (on the caller's stack: calls run concurrently without the GIL). */
typedef struct {
    Py_buffer views[10];
    int n;
} Held;

void release_all(Held *h);
void *get(Held *h, PyObject *obj, const char *name, int writable, char kind, Py_ssize_t count);
int get_all(Held *h, PyObject **objs, const char *const *names, const char *flags,
            const Py_ssize_t *counts, int n, char kind, void **ptr);
const int64_t *get_index(Held *h, PyObject *obj, const char *name, Py_ssize_t count);
const int64_t *get_index_below(Held *h, PyObject *obj, const char *name, Py_ssize_t count,
                               Py_ssize_t limit);
Py_ssize_t count_of(PyObject *obj, char kind);
/* threads.c: fn(arg, 0) and fn(arg, 1), on the calling thread and the helper thread */
void run_halves(void (*fn)(void *, int), void *arg);
/* threads.c: fn(arg, r0, r1, half) over rows [0, rows), in two halves on two threads when
 * `work` (the elements touched) makes it worth it; 0 if a half returned 0 */
int run_rows(int (*fn)(void *, Py_ssize_t, Py_ssize_t, int), void *arg, Py_ssize_t rows,
             double work);
char kind_of(PyObject *obj);
/* conv.c: the 15 sizes of a 2-D convolution from a sequence; -1 with an exception set */
int conv_dims(PyObject *dims, Py_ssize_t *d, const char *name);

/* the module's functions, one file per family */
PyObject *py_lstm_fwd(PyObject *self, PyObject *args);
PyObject *py_lstm_bwd(PyObject *self, PyObject *args);
PyObject *py_adam_many(PyObject *self, PyObject *args);
PyObject *py_sgd_many(PyObject *self, PyObject *args);
PyObject *py_xent_fwd(PyObject *self, PyObject *args);
PyObject *py_xent_bwd(PyObject *self, PyObject *args);
PyObject *py_softmax_rows(PyObject *self, PyObject *args);
PyObject *py_softmax_rows_bwd(PyObject *self, PyObject *args);
PyObject *py_ln_fwd(PyObject *self, PyObject *args);
PyObject *py_ln_bwd(PyObject *self, PyObject *args);
PyObject *py_relu_fwd(PyObject *self, PyObject *args);
PyObject *py_relu_bwd(PyObject *self, PyObject *args);
PyObject *py_scatter_add(PyObject *self, PyObject *args);
PyObject *py_gather(PyObject *self, PyObject *args);
PyObject *py_pool_fwd(PyObject *self, PyObject *args);
PyObject *py_pool_bwd(PyObject *self, PyObject *args);
PyObject *py_index_add_rows(PyObject *self, PyObject *args);
PyObject *py_conv2d_small(PyObject *self, PyObject *args);
PyObject *py_swap01(PyObject *self, PyObject *args);
PyObject *py_lstm_seq(PyObject *self, PyObject *args);
PyObject *py_dense_rows(PyObject *self, PyObject *args);
PyObject *py_conv2d_direct(PyObject *self, PyObject *args);
PyObject *py_conv2d_direct_wgrad(PyObject *self, PyObject *args);
PyObject *py_conv2d_chan(PyObject *self, PyObject *args);
PyObject *py_conv2d_chan_wgrad(PyObject *self, PyObject *args);
PyObject *py_set_threads(PyObject *self, PyObject *args);
PyObject *py_get_threads(PyObject *self, PyObject *args);

#endif
