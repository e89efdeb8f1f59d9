/* The encodings procshare stores: canonical key bytes for exact str, bytes
 * and int keys (the general encoder for other keys is procshare._shm.keys), and
 * values as (tag, bytes).  One implementation of each, used by the Ring,
 * Table and Vector types and, through the module functions, by Python. */
#include "codec.h"

#include <stdio.h>
#include <string.h>

static PyObject *pickle_dumps, *pickle_loads; /* looked up at first use */

static int load_pickle(void)
{
    if (pickle_loads != NULL)
        return 0;
    PyObject *pickle = PyImport_ImportModule("pickle");
    if (pickle == NULL)
        return -1;
    pickle_dumps = PyObject_GetAttrString(pickle, "dumps");
    pickle_loads = PyObject_GetAttrString(pickle, "loads");
    Py_DECREF(pickle);
    return pickle_dumps != NULL && pickle_loads != NULL ? 0 : -1;
}

PyObject *ps_decode_value(uint32_t tag, const char *data, uint64_t len)
{
    switch (tag) {
    case TAG_BYTES: return PyBytes_FromStringAndSize(data, (Py_ssize_t)len);
    case TAG_STR: return PyUnicode_DecodeUTF8(data, (Py_ssize_t)len, "surrogatepass");
    case TAG_INT: {
        if (len != 8)
            break;
        uint64_t u = 0;
        for (int i = 7; i >= 0; i--)
            u = (u << 8) | (unsigned char)data[i];
        return PyLong_FromLongLong((long long)u);
    }
    case TAG_PICKLED: {
        if (load_pickle() < 0)
            return NULL;
        PyObject *blob = PyBytes_FromStringAndSize(data, (Py_ssize_t)len);
        if (blob == NULL)
            return NULL;
        PyObject *v = PyObject_CallOneArg(pickle_loads, blob);
        Py_DECREF(blob);
        return v;
    }
    default: break;
    }
    PyErr_Format(PyExc_ValueError, "unknown stored value (tag %u, %llu bytes)", tag,
                 (unsigned long long)len);
    return NULL;
}

PyObject *ps_decode_value_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2 || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "decode_value(tag: int, data: bytes)");
        return NULL;
    }
    unsigned long tag = PyLong_AsUnsignedLong(args[0]);
    if (tag == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    return ps_decode_value((uint32_t)tag, PyBytes_AS_STRING(args[1]),
                           (uint64_t)PyBytes_GET_SIZE(args[1]));
}

Py_ssize_t ps_canon_fast(PyObject *key, char *buf, Py_ssize_t cap, char **out, char **heap_copy)
{
    const char *body;
    Py_ssize_t n;
    char prefix, digits[32];
    *heap_copy = NULL;
    if (PyUnicode_CheckExact(key)) {
        body = PyUnicode_AsUTF8AndSize(key, &n);
        if (body == NULL) { /* lone surrogates: the general encoder handles them */
            PyErr_Clear();
            return -1;
        }
        prefix = 's';
    } else if (PyBytes_CheckExact(key)) {
        body = PyBytes_AS_STRING(key);
        n = PyBytes_GET_SIZE(key);
        prefix = 'b';
    } else if (PyLong_CheckExact(key)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(key, &overflow);
        if (overflow || (v == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return -1;
        }
        n = snprintf(digits, sizeof digits, "%lld", v);
        body = digits;
        prefix = 'i';
    } else
        return -1;
    char *dst = buf;
    if (n + 1 > cap) {
        if ((*heap_copy = PyMem_Malloc((size_t)n + 1)) == NULL) {
            PyErr_NoMemory();
            return -2;
        }
        dst = *heap_copy;
    }
    dst[0] = prefix;
    memcpy(dst + 1, body, (size_t)n);
    *out = dst;
    return n + 1;
}

int ps_encode_fast(PyObject *value, uint32_t *tag, const char **data, Py_ssize_t *len,
                   char int_buf[8])
{
    if (PyBytes_CheckExact(value)) {
        *tag = TAG_BYTES;
        *data = PyBytes_AS_STRING(value);
        *len = PyBytes_GET_SIZE(value);
        return 1;
    }
    if (PyUnicode_CheckExact(value)) {
        *data = PyUnicode_AsUTF8AndSize(value, len);
        if (*data == NULL) { /* lone surrogates: pickled instead */
            PyErr_Clear();
            return 0;
        }
        *tag = TAG_STR;
        return 1;
    }
    if (PyLong_CheckExact(value)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow || (v == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return 0;
        }
        uint64_t u = (uint64_t)v;
        for (int i = 0; i < 8; i++, u >>= 8)
            int_buf[i] = (char)(u & 0xff);
        *tag = TAG_INT;
        *data = int_buf;
        *len = 8;
        return 1;
    }
    return 0;
}

int ps_encode(PyObject *value, ps_encoded *out)
{
    out->owned = NULL;
    if (ps_encode_fast(value, &out->tag, &out->data, &out->len, out->int_buf))
        return 0;
    if (load_pickle() < 0)
        return -1;
    PyObject *proto = PyLong_FromLong(5); /* pickle.HIGHEST_PROTOCOL on 3.8+ */
    if (proto == NULL)
        return -1;
    out->owned = PyObject_CallFunctionObjArgs(pickle_dumps, value, proto, NULL);
    Py_DECREF(proto);
    if (out->owned == NULL)
        return -1;
    if (!PyBytes_Check(out->owned)) {
        Py_CLEAR(out->owned);
        PyErr_SetString(PyExc_TypeError, "pickle.dumps did not return bytes");
        return -1;
    }
    out->tag = TAG_PICKLED;
    out->data = PyBytes_AS_STRING(out->owned);
    out->len = PyBytes_GET_SIZE(out->owned);
    return 0;
}

PyObject *ps_encode_value_py(PyObject *module, PyObject *value)
{
    (void)module;
    ps_encoded e;
    if (ps_encode(value, &e) < 0)
        return NULL;
    PyObject *bytes = e.tag == TAG_BYTES ? Py_NewRef(value) /* immutable: no copy */
                      : e.owned != NULL  ? e.owned
                                         : PyBytes_FromStringAndSize(e.data, e.len);
    return bytes == NULL ? NULL : Py_BuildValue("(IN)", e.tag, bytes);
}

PyObject *ps_canonical_fast_py(PyObject *module, PyObject *key)
{
    (void)module;
    char buf[256], *out, *heap_copy;
    Py_ssize_t n = ps_canon_fast(key, buf, sizeof buf, &out, &heap_copy);
    if (n == -2)
        return NULL;
    if (n == -1)
        Py_RETURN_NONE;
    PyObject *r = PyBytes_FromStringAndSize(out, n);
    PyMem_Free(heap_copy);
    return r;
}
