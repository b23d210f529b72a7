/* ember.ops._native: optional compiled kernels for the hottest elementwise work.
 *
 * Sources: this file (the module and its function table), helpers.c (argument checks),
 * threads.c (the helper thread of the splittable kernels), rnn.c, optim.c, rows.c, dense.c,
 * conv.c, convdirect.c, convchan.c and pool.c (one family of kernels each), native.h (shared).
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
 * Threads: no OpenMP. Its worker threads spin after each parallel region and fought OpenBLAS's
 * threads for this machine's two cores (the MNIST-1D MLP step went from 1.3 to 8 ms), so each
 * kernel runs on the calling thread, with the GIL released; the small-batch dense layer and
 * LSTM sequence give half of their work to one helper thread of their own (threads.c), which
 * never makes the caller wait.
 *
 * Rounding: built with -ffp-contract=off (no fused multiply-add), so kernels that do the same
 * float operations in the same order as their NumPy twin (the optimizer updates) give the same
 * bits; the recurrent cells use libmvec's exp/tanh, which may differ from NumPy's by an ulp;
 * the direct convolutions (convdirect.c, convchan.c) alone turn fused multiply-add on.
 *
 * Arguments are C-contiguous float32 or float64 NumPy arrays (read through NumPy's C API when
 * built with its headers, else through the buffer protocol; helpers.c checks dtype, contiguity,
 * writability and sizes either way), and Python floats/ints.
 */
#include "native.h"
#ifdef EMBER_HAVE_NUMPY
#define PY_ARRAY_UNIQUE_SYMBOL ember_native_ARRAY_API
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>
#endif

static PyMethodDef methods[] = {
    {"lstm_fwd", py_lstm_fwd, METH_VARARGS,
     "lstm_fwd(mm, x, b, c, acts, c_new, tanh_c, out, rows, H): an LSTM step's pointwise part."},
    {"lstm_bwd", py_lstm_bwd, METH_VARARGS,
     "lstm_bwd(dm, dc, acts, c, tanh_c, dpre, rows, H): its backward; dc is updated in place."},
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
    {"conv2d_direct", py_conv2d_direct, METH_VARARGS,
     "conv2d_direct(x, w, b, out, dims): a stride-1 2-D convolution with few input taps."},
    {"conv2d_direct_wgrad", py_conv2d_direct_wgrad, METH_VARARGS,
     "conv2d_direct_wgrad(x, g, gw, dims): its weight gradient."},
    {"conv2d_chan", py_conv2d_chan, METH_VARARGS,
     "conv2d_chan(x, w, b, out, dims): a 2-D convolution vectorized over output channels."},
    {"conv2d_chan_wgrad", py_conv2d_chan_wgrad, METH_VARARGS,
     "conv2d_chan_wgrad(x, g, gw, dims): its weight gradient."},
    {"gather", py_gather, METH_VARARGS,
     "gather(dst, src, shape, strides, offset): dst = src[strided grid] (im2col)."},
    {"dense_rows", py_dense_rows, METH_VARARGS,
     "dense_rows(x, w, b, out, B, K, N): out = x w^T + b for a few rows (b may be None)."},
    {"set_threads", py_set_threads, METH_VARARGS,
     "set_threads(n): threads the splittable kernels may use (1: the calling thread only)."},
    {"get_threads", py_get_threads, METH_NOARGS, "get_threads() -> the threads they use."},
    {"lstm_seq", py_lstm_seq, METH_VARARGS,
     "lstm_seq(x, w_hh, b, hs, c, T, B, H, reverse[, input, w_ih, I]): a small-batch LSTM "
     "sequence, no graph (x the input projection, or None with the raw input and w_ih)."},
    {"swap01", py_swap01, METH_VARARGS,
     "swap01(src, dst, bias, A, B, S): dst (B, A, S) = src (A, B, S) + bias[a]."},
    {"adam_many", py_adam_many, METH_VARARGS,
     "adam_many(params, grads, exp_avgs, exp_avg_sqs, max_sqs, steps, lr, b1, b2, eps, wd, "
     "decoupled, maximize): Adam over lists of parameters."},
    {"sgd_many", py_sgd_many, METH_VARARGS,
     "sgd_many(params, grads, bufs, firsts, lr, wd, maximize, momentum, 1 - dampening, "
     "nesterov): SGD over lists of parameters."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_native",
    .m_doc = "ember's optional compiled kernels (see ember.ops.native).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__native(void)
{
#ifdef EMBER_HAVE_NUMPY
    import_array(); /* NumPy's C API, for reading array arguments (helpers.c) */
#endif
    return PyModule_Create(&module);
}
