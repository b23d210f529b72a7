/* Argument helpers of ember.ops._native's functions. */
#include "native.h"

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
