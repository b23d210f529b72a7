/* Argument helpers of ember.ops._native's functions.
 *
 * A NumPy array (exactly np.ndarray, native byte order) is read through NumPy's C API: a few
 * field reads. Anything else goes through the buffer protocol, which for an array costs about
 * 0.1 us per argument (NumPy formats a description of the buffer each time); a batch-1 layer's
 * kernel call takes four or five arrays. Built without NumPy's headers, everything takes the
 * buffer protocol. */
#include "native.h"
#ifdef EMBER_HAVE_NUMPY
#define NO_IMPORT_ARRAY
#define PY_ARRAY_UNIQUE_SYMBOL ember_native_ARRAY_API
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

/* obj as a plain native-order NumPy array, or NULL (then: the buffer protocol) */
static PyArrayObject *plain_array(PyObject *obj)
{
    if (!PyArray_CheckExact(obj))
        return NULL;
    PyArrayObject *a = (PyArrayObject *)obj;
    return PyArray_ISNOTSWAPPED(a) ? a : NULL;
}

/* 'f' or 'd' for a float32 or float64 array, its type character otherwise */
static char type_char(PyArrayObject *a)
{
    int t = PyArray_TYPE(a);
    return t == NPY_FLOAT ? 'f' : t == NPY_DOUBLE ? 'd' : PyArray_DESCR(a)->type;
}
#endif

/* ------------------------------------------------------------------------ argument helpers */

void release_all(Held *h)
{
    for (int i = 0; i < h->n; i++)
        PyBuffer_Release(&h->views[i]);
    h->n = 0;
}

/* The data pointer of `obj` as an array of `count` items of the kind `kind` ('f' or 'd'). */
void *get(Held *h, PyObject *obj, const char *name, int writable, char kind,
                 Py_ssize_t count)
{
#ifdef EMBER_HAVE_NUMPY
    PyArrayObject *a = plain_array(obj);
    if (a) { /* the same checks and messages as below, from the array's fields */
        char t = type_char(a);
        if (t != kind) {
            PyErr_Format(PyExc_TypeError, "_native: %s has format '%c', expected '%c'", name, t,
                         kind);
            return NULL;
        }
        if (!PyArray_IS_C_CONTIGUOUS(a)) {
            PyErr_Format(PyExc_ValueError, "_native: %s is not C-contiguous", name);
            return NULL;
        }
        if (writable && !PyArray_ISWRITEABLE(a)) {
            PyErr_Format(PyExc_ValueError, "_native: %s is read-only", name);
            return NULL;
        }
        if (PyArray_SIZE(a) != count) {
            PyErr_Format(PyExc_ValueError, "_native: %s holds %zd items, expected %zd", name,
                         (Py_ssize_t)PyArray_SIZE(a), count);
            return NULL;
        }
        return PyArray_DATA(a);
    }
#endif
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
int get_all(Held *h, PyObject **objs, const char *const *names, const char *flags,
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
const int64_t *get_index(Held *h, PyObject *obj, const char *name, Py_ssize_t count)
{
#ifdef EMBER_HAVE_NUMPY
    PyArrayObject *a = plain_array(obj);
    if (a) {
        if (!(PyArray_TYPE(a) == NPY_INT64 || (PyArray_TYPE(a) == NPY_LONGLONG &&
                                              PyArray_ITEMSIZE(a) == 8)) ||
            !PyArray_IS_C_CONTIGUOUS(a) || PyArray_SIZE(a) != count) {
            PyErr_Format(PyExc_TypeError, "_native: %s must hold %zd int64 items", name, count);
            return NULL;
        }
        return PyArray_DATA(a);
    }
#endif
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
const int64_t *get_index_below(Held *h, PyObject *obj, const char *name, Py_ssize_t count,
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
Py_ssize_t count_of(PyObject *obj, char kind)
{
#ifdef EMBER_HAVE_NUMPY
    PyArrayObject *a = plain_array(obj);
    if (a && (PyArray_IS_C_CONTIGUOUS(a) || PyArray_IS_F_CONTIGUOUS(a)))
        return PyArray_NBYTES(a) / (kind == 'f' ? 4 : 8);
#endif
    Py_buffer v;
    if (PyObject_GetBuffer(obj, &v, PyBUF_ANY_CONTIGUOUS) < 0)
        return -1;
    Py_ssize_t n = v.len / (kind == 'f' ? 4 : 8);
    PyBuffer_Release(&v);
    return n;
}

/* 'f' or 'd' from the first array's dtype (0 with an error set otherwise). */
char kind_of(PyObject *obj)
{
#ifdef EMBER_HAVE_NUMPY
    PyArrayObject *a = plain_array(obj);
    if (a && (PyArray_IS_C_CONTIGUOUS(a) || PyArray_IS_F_CONTIGUOUS(a))) {
        char t = type_char(a);
        if (t == 'f' || t == 'd')
            return t;
        PyErr_SetString(PyExc_TypeError, "_native: expected a float32 or float64 array");
        return 0;
    }
#endif
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
