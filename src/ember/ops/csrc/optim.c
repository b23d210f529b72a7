/* Optimizer updates (used by ember.ops.optim_kernels). */
#include "native.h"

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

/* Adam over a list of parameters in one call (PyTorch's "foreach" idea): the per-parameter
 * scalars are computed here, in double, exactly as optim_kernels.adam_step computes them in
 * Python (C's pow and sqrt are what Python's ** and math.sqrt call), so the result is the same
 * bit for bit; what it saves is the Python work per parameter. */
PyObject *py_adam_many(PyObject *self, PyObject *args)
{
    PyObject *lists[5], *steps;
    double lr, beta1, beta2, eps, wd;
    int decoupled, maximize;
    if (!PyArg_ParseTuple(args, "O!O!O!O!OO!dddddpp", &PyList_Type, &lists[0], &PyList_Type,
                          &lists[1], &PyList_Type, &lists[2], &PyList_Type, &lists[3],
                          &lists[4], &PyList_Type, &steps, &lr, &beta1, &beta2, &eps, &wd,
                          &decoupled, &maximize))
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(lists[0]);
    int amsgrad = lists[4] != Py_None;
    if ((amsgrad && !PyList_Check(lists[4])) || PyList_GET_SIZE(steps) != count) {
        PyErr_SetString(PyExc_ValueError, "_native: adam_many takes lists of one length");
        return NULL;
    }
    for (int l = 1; l < 4 + amsgrad; l++)
        if (PyList_GET_SIZE(lists[l]) != count) {
            PyErr_SetString(PyExc_ValueError, "_native: adam_many takes lists of one length");
            return NULL;
        }
    static const char *names[] = {"param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
    double decay = decoupled && wd != 0 ? 1.0 - lr * wd : 1.0, w1 = 1.0 - beta1;
    for (Py_ssize_t i = 0; i < count; i++) {
        double step = PyFloat_AsDouble(PyList_GET_ITEM(steps, i));
        if (step == -1.0 && PyErr_Occurred())
            return NULL;
        PyObject *first = PyList_GET_ITEM(lists[0], i);
        char k = kind_of(first);
        Py_ssize_t n = k ? count_of(first, k) : -1;
        if (n < 0)
            return NULL;
        Held h = {.n = 0};
        void *p[5] = {NULL, NULL, NULL, NULL, NULL};
        for (int l = 0; l < 4 + amsgrad; l++)
            if (!(p[l] = get(&h, PyList_GET_ITEM(lists[l], i), names[l], l != 1, k, n))) {
                release_all(&h);
                return NULL;
            }
        double bc2_sqrt = sqrt(1.0 - pow(beta2, step)), neg_step = -(lr / (1.0 - pow(beta1, step)));
        Py_BEGIN_ALLOW_THREADS
        if (k == 'f')
            adam_f(p[0], p[1], p[2], p[3], p[4], n, decay, decoupled ? 0.0 : wd, maximize, w1,
                   1.0 - w1, beta2, 1.0 - beta2, bc2_sqrt, eps, neg_step);
        else
            adam_d(p[0], p[1], p[2], p[3], p[4], n, decay, decoupled ? 0.0 : wd, maximize, w1,
                   1.0 - w1, beta2, 1.0 - beta2, bc2_sqrt, eps, neg_step);
        Py_END_ALLOW_THREADS
        release_all(&h);
    }
    Py_RETURN_NONE;
}

/* SGD over a list of parameters in one call (momentum buffers None when momentum is 0; `firsts`
 * marks the parameters whose buffer starts now), the same bits as one call each. */
PyObject *py_sgd_many(PyObject *self, PyObject *args)
{
    PyObject *lists[3], *firsts;
    double lr, wd, momentum, damp_c;
    int maximize, nesterov;
    if (!PyArg_ParseTuple(args, "O!O!OO!ddpddp", &PyList_Type, &lists[0], &PyList_Type,
                          &lists[1], &lists[2], &PyList_Type, &firsts, &lr, &wd, &maximize,
                          &momentum, &damp_c, &nesterov))
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(lists[0]);
    int with_buf = lists[2] != Py_None;
    if (PyList_GET_SIZE(lists[1]) != count || PyList_GET_SIZE(firsts) != count ||
        (with_buf && (!PyList_Check(lists[2]) || PyList_GET_SIZE(lists[2]) != count))) {
        PyErr_SetString(PyExc_ValueError, "_native: sgd_many takes lists of one length");
        return NULL;
    }
    static const char *names[] = {"param", "grad", "momentum_buffer"};
    for (Py_ssize_t i = 0; i < count; i++) {
        int first = PyObject_IsTrue(PyList_GET_ITEM(firsts, i));
        if (first < 0)
            return NULL;
        PyObject *p0 = PyList_GET_ITEM(lists[0], i);
        char k = kind_of(p0);
        Py_ssize_t n = k ? count_of(p0, k) : -1;
        if (n < 0)
            return NULL;
        Held h = {.n = 0};
        void *p[3] = {NULL, NULL, NULL};
        for (int l = 0; l < 2 + with_buf; l++)
            if (!(p[l] = get(&h, PyList_GET_ITEM(lists[l], i), names[l], l != 1, k, n))) {
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
    }
    Py_RETURN_NONE;
}
