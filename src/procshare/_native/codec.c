/* The encodings procshare stores: canonical key bytes, and values as (tag,
 * bytes).  One implementation of each, used by the Ring, Table and Vector
 * types and, through the module functions, by Python. */
#include "codec.h"

#include "generation.h"
#include "slots.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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

/* How procshare's own objects are stored without pickling (set_handles). */
static PyObject *shared_type, *recorded_fn, *rebuild_fn;
static PyObject *by_class; /* each class asked: recorded(cls) */

PyObject *ps_set_handles_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3 || !PyType_Check(args[0]) || !PyCallable_Check(args[1]) ||
        !PyCallable_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "set_handles(shared: type, recorded, rebuild)");
        return NULL;
    }
    PyObject *fresh = PyDict_New();
    if (fresh == NULL)
        return NULL;
    Py_XSETREF(by_class, fresh);
    Py_XSETREF(shared_type, Py_NewRef(args[0]));
    Py_XSETREF(recorded_fn, Py_NewRef(args[1]));
    Py_XSETREF(rebuild_fn, Py_NewRef(args[2]));
    Py_RETURN_NONE;
}

/* The object whose handle record (TAG_HANDLE) is data. */
static PyObject *rebuilt(const char *data, uint64_t len)
{
    if (len < 3 || rebuild_fn == NULL) {
        PyErr_SetString(PyExc_ValueError, "a stored handle is damaged");
        return NULL;
    }
    unsigned kind = (unsigned char)data[0];
    unsigned mode = (unsigned char)data[1] | (unsigned)(unsigned char)data[2] << 8;
    PyObject *name = PyUnicode_DecodeUTF8(data + 3, (Py_ssize_t)(len - 3), "strict");
    if (name == NULL)
        return NULL;
    PyObject *obj = PyObject_CallFunction(rebuild_fn, "IOI", kind, name, mode);
    Py_DECREF(name);
    return obj;
}

/* How instances of cls are stored: the number of its kind (0: pickled), and
 * whether its handles never carry arguments (else each one is asked), as
 * recorded(cls) said when first asked.  0 or 1 for plain, -1 with an error. */
static int how_stored(PyTypeObject *cls, unsigned long *number)
{
    PyObject *how = PyDict_GetItemWithError(by_class, (PyObject *)cls);
    if (how == NULL) {
        if (PyErr_Occurred() || (how = PyObject_CallOneArg(recorded_fn, (PyObject *)cls)) == NULL)
            return -1;
        int stored = PyDict_SetItem(by_class, (PyObject *)cls, how);
        Py_DECREF(how); /* by_class holds it */
        if (stored < 0)
            return -1;
    }
    int plain = -1;
    if (!PyTuple_Check(how) || PyTuple_GET_SIZE(how) != 2 ||
        (*number = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(how, 0))) > 255 ||
        (plain = PyObject_IsTrue(PyTuple_GET_ITEM(how, 1))) < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "recorded() gives (kind number, plain)");
        return -1;
    }
    return plain;
}

/* Whether value's handle carries arguments beside its name (_handle_args()):
 * 1, 0, or -1 with an error. */
static int has_arguments(PyObject *value)
{
    static PyObject *name;
    if (name == NULL && (name = PyUnicode_InternFromString("_handle_args")) == NULL)
        return -1;
    PyObject *extra = PyObject_CallMethodNoArgs(value, name);
    if (extra == NULL)
        return -1;
    Py_ssize_t n = PyObject_Length(extra);
    Py_DECREF(extra);
    return n < 0 ? -1 : n > 0;
}

/* The handle record of value, a procshare object: its kind's number, mode and
 * name (from value._handle()) as a new bytes object; None when it must be
 * pickled (a class recorded() refuses, or a handle with arguments); NULL with
 * an exception. */
static PyObject *handle_record(PyObject *value)
{
    unsigned long number = 0;
    int plain = how_stored(Py_TYPE(value), &number);
    if (plain < 0)
        return NULL;
    if (number == 0)
        Py_RETURN_NONE;
    if (!plain) {
        int extra = has_arguments(value);
        if (extra != 0)
            return extra < 0 ? NULL : Py_NewRef(Py_None);
    }
    /* A new Dict or List in its maker's arena slot: the record from the slot, as its
     * _handle() would give it (the arena's name and mode, the kind its class's). */
    PyObject *place = ps_generation_place(value);
    if (place != NULL && PyTuple_Check(place) && PyTuple_GET_SIZE(place) == 3 &&
        PyObject_TypeCheck(PyTuple_GET_ITEM(place, 0), &ps_SlotsType))
        return ps_slots_record(PyTuple_GET_ITEM(place, 0), PyTuple_GET_ITEM(place, 1),
                               (unsigned)number);
    static PyObject *handle_name;
    if (handle_name == NULL && (handle_name = PyUnicode_InternFromString("_handle")) == NULL)
        return NULL;
    PyObject *h = PyObject_CallMethodNoArgs(value, handle_name);
    if (h == NULL)
        return NULL;
    unsigned long kind = 0, mode = 0;
    const char *name = NULL;
    Py_ssize_t n = 0;
    if (!PyTuple_Check(h) || PyTuple_GET_SIZE(h) != 3 ||
        (kind = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(h, 0))) > 255 ||
        (mode = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(h, 2))) > 0xffff ||
        (name = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(h, 1), &n)) == NULL) {
        Py_DECREF(h);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "_handle() gives (kind, name, mode)");
        return NULL;
    }
    PyObject *record = kind != number ? Py_NewRef(Py_None) : PyBytes_FromStringAndSize(NULL, n + 3);
    if (record != NULL && record != Py_None) {
        char *r = PyBytes_AS_STRING(record);
        r[0] = (char)kind;
        r[1] = (char)(mode & 0xff);
        r[2] = (char)(mode >> 8);
        memcpy(r + 3, name, (size_t)n);
    }
    Py_DECREF(h);
    return record;
}

PyObject *ps_decode_value(uint32_t tag, const char *data, uint64_t len)
{
    switch (tag) {
    case TAG_HANDLE: return rebuilt(data, len);
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

/* v's decimal digits, as "%lld" writes them, into out (room for 20): their count.
 * A key's canonical bytes hold them, so every int key is formatted here, on the
 * hot path of every int-keyed Dict operation (snprintf cost as much as the rest). */
int ps_decimal(char *out, long long v)
{
    char reversed[20];
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    int n = 0, len = 0;
    do {
        reversed[n++] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u != 0);
    if (v < 0)
        out[len++] = '-';
    while (n > 0)
        out[len++] = reversed[--n];
    return len;
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
        n = ps_decimal(digits, v);
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
        if (v < PS_INT_MIN || v > PS_INT_MAX)
            return 0;
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

/* pickle.dumps(obj, 5) as bytes (protocol 5: the same bytes on every version
 * procshare supports, so pickled keys meet across interpreters). */
static PyObject *pickled(PyObject *obj)
{
    if (load_pickle() < 0)
        return NULL;
    PyObject *proto = PyLong_FromLong(5);
    if (proto == NULL)
        return NULL;
    PyObject *blob = PyObject_CallFunctionObjArgs(pickle_dumps, obj, proto, NULL);
    Py_DECREF(proto);
    if (blob != NULL && !PyBytes_Check(blob)) {
        Py_CLEAR(blob);
        PyErr_SetString(PyExc_TypeError, "pickle.dumps did not return bytes");
    }
    return blob;
}

int ps_encode(PyObject *value, ps_encoded *out)
{
    out->owned = NULL;
    if (ps_encode_fast(value, &out->tag, &out->data, &out->len, out->int_buf))
        return 0;
    if (shared_type != NULL && PyObject_TypeCheck(value, (PyTypeObject *)shared_type)) {
        if ((out->owned = handle_record(value)) == NULL)
            return -1;
        if (out->owned == Py_None)
            Py_CLEAR(out->owned); /* pickled below */
        else
            out->tag = TAG_HANDLE;
    }
    if (out->owned == NULL) {
        if ((out->owned = pickled(value)) == NULL)
            return -1;
        out->tag = TAG_PICKLED;
    }
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
    if (bytes == NULL)
        return NULL;
    PyObject *tag = PyLong_FromUnsignedLong(e.tag);
    PyObject *pair = tag == NULL ? NULL : PyTuple_Pack(2, tag, bytes);
    Py_XDECREF(tag);
    Py_DECREF(bytes);
    return pair;
}

/* prefix followed by n bytes of body, as a new bytes object. */
static PyObject *prefixed(char prefix, const char *body, Py_ssize_t n)
{
    PyObject *r = PyBytes_FromStringAndSize(NULL, n + 1);
    if (r != NULL) {
        PyBytes_AS_STRING(r)[0] = prefix;
        memcpy(PyBytes_AS_STRING(r) + 1, body, (size_t)n);
    }
    return r;
}

/* "i" and the decimal digits of the int value of v (subclasses' overrides ignored). */
static PyObject *canon_int(PyObject *v)
{
    PyObject *digits = PyLong_Type.tp_repr(v);
    if (digits == NULL)
        return NULL;
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(digits, &n);
    PyObject *r = s == NULL ? NULL : prefixed('i', s, n);
    Py_DECREF(digits);
    return r;
}

/* An integral float meets the equal int; any other is "f" and its 8 bytes. */
static PyObject *canon_float(double d)
{
    if (isfinite(d) && d == floor(d)) {
        PyObject *i = PyLong_FromDouble(d);
        PyObject *r = i == NULL ? NULL : canon_int(i);
        Py_XDECREF(i);
        return r;
    }
    char packed[8];
    if (PyFloat_Pack8(d, packed, 1) < 0)
        return NULL;
    return prefixed('f', packed, 8);
}

/* prefix, then each item's canonical bytes framed by their 4-byte length (in
 * order, or sorted: a frozenset's parts, whatever its iteration order). */
static PyObject *canon_parts(PyObject *items, char prefix, int sort)
{
    PyObject *parts = PyList_New(0), *it = PyObject_GetIter(items), *item;
    if (parts == NULL || it == NULL)
        goto fail;
    while ((item = PyIter_Next(it)) != NULL) {
        PyObject *c = ps_canonical(item);
        Py_DECREF(item);
        if (c == NULL)
            goto fail;
        Py_ssize_t n = PyBytes_GET_SIZE(c);
        PyObject *framed = PyBytes_FromStringAndSize(NULL, n + 4);
        if (framed != NULL) {
            for (int b = 0; b < 4; b++)
                PyBytes_AS_STRING(framed)[b] = (char)(((uint64_t)n >> (8 * b)) & 0xff);
            memcpy(PyBytes_AS_STRING(framed) + 4, PyBytes_AS_STRING(c), (size_t)n);
        }
        Py_DECREF(c);
        if (framed == NULL || PyList_Append(parts, framed) < 0) {
            Py_XDECREF(framed);
            goto fail;
        }
        Py_DECREF(framed);
    }
    if (PyErr_Occurred() || (sort && PyList_Sort(parts) < 0))
        goto fail;
    Py_CLEAR(it);
    Py_ssize_t total = 1, count = PyList_GET_SIZE(parts);
    for (Py_ssize_t i = 0; i < count; i++)
        total += PyBytes_GET_SIZE(PyList_GET_ITEM(parts, i));
    PyObject *r = PyBytes_FromStringAndSize(NULL, total);
    if (r != NULL) {
        char *dst = PyBytes_AS_STRING(r);
        *dst++ = prefix;
        for (Py_ssize_t i = 0; i < count; i++) {
            PyObject *part = PyList_GET_ITEM(parts, i);
            memcpy(dst, PyBytes_AS_STRING(part), (size_t)PyBytes_GET_SIZE(part));
            dst += PyBytes_GET_SIZE(part);
        }
    }
    Py_DECREF(parts);
    return r;
fail:
    Py_XDECREF(parts);
    Py_XDECREF(it);
    return NULL;
}

PyObject *ps_canonical(PyObject *key)
{
    char buf[256], *out, *heap_copy;
    Py_ssize_t n = ps_canon_fast(key, buf, sizeof buf, &out, &heap_copy);
    if (n == -2)
        return NULL;
    if (n >= 0) {
        PyObject *r = PyBytes_FromStringAndSize(out, n);
        PyMem_Free(heap_copy);
        return r;
    }
    if (PyUnicode_Check(key)) {
        PyObject *utf8 = PyUnicode_AsEncodedString(key, "utf-8", "surrogatepass");
        PyObject *r =
            utf8 == NULL ? NULL : prefixed('s', PyBytes_AS_STRING(utf8), PyBytes_GET_SIZE(utf8));
        Py_XDECREF(utf8);
        return r;
    }
    if (PyBytes_Check(key))
        return prefixed('b', PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key));
    if (PyLong_Check(key)) /* bool too: True == 1 */
        return canon_int(key);
    if (key == Py_None)
        return prefixed('n', "", 0);
    if (PyFloat_Check(key))
        return canon_float(PyFloat_AS_DOUBLE(key));
    if (PyComplex_Check(key) && PyComplex_ImagAsDouble(key) == 0.0)
        return canon_float(PyComplex_RealAsDouble(key));
    if (PyTuple_Check(key) || PyFrozenSet_Check(key)) {
        if (Py_EnterRecursiveCall(" while encoding a dict key"))
            return NULL;
        PyObject *r = canon_parts(key, PyTuple_Check(key) ? 't' : 'F', PyFrozenSet_Check(key));
        Py_LeaveRecursiveCall();
        return r;
    }
    if (PyObject_Hash(key) == -1) /* unhashable keys raise TypeError, as with dict */
        return NULL;
    PyObject *blob = pickled(key);
    PyObject *r =
        blob == NULL ? NULL : prefixed('p', PyBytes_AS_STRING(blob), PyBytes_GET_SIZE(blob));
    Py_XDECREF(blob);
    return r;
}

PyObject *ps_canonical_py(PyObject *module, PyObject *key)
{
    (void)module;
    return ps_canonical(key);
}

PyObject *ps_encode_item_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "encode_item(key, value)");
        return NULL;
    }
    PyObject *key = args[0];
    PyObject *canon = ps_canonical(key);
    if (canon == NULL)
        return NULL;
    int exact = PyUnicode_CheckExact(key) || PyBytes_CheckExact(key) || PyLong_CheckExact(key);
    PyObject *blob = exact ? PyBytes_FromStringAndSize(NULL, 0) : pickled(key);
    PyObject *value = blob == NULL ? NULL : ps_encode_value_py(NULL, args[1]);
    PyObject *item = NULL;
    if (value != NULL)
        item = PyTuple_Pack(4, canon, blob, PyTuple_GET_ITEM(value, 0), PyTuple_GET_ITEM(value, 1));
    Py_DECREF(canon);
    Py_XDECREF(blob);
    Py_XDECREF(value);
    return item;
}

/* ---- the Redis back end's form of the same encoding ---------------------- */

/* One value as Redis stores it: an int of TAG_INT as its decimal digits (so
 * HINCRBY and INCRBY update it in place), anything else as the tag byte and
 * the bytes.  A new bytes object, or NULL. */
static PyObject *redis_stored(PyObject *value)
{
    ps_encoded e;
    if (ps_encode(value, &e) < 0)
        return NULL;
    PyObject *out;
    if (e.tag == TAG_INT) {
        uint64_t u = 0;
        for (int i = 7; i >= 0; i--)
            u = (u << 8) | (unsigned char)e.int_buf[i];
        char digits[24];
        int n = ps_decimal(digits, (long long)u);
        out = PyBytes_FromStringAndSize(digits, n);
    } else {
        out = PyBytes_FromStringAndSize(NULL, e.len + 1);
        if (out != NULL) {
            PyBytes_AS_STRING(out)[0] = (char)e.tag;
            memcpy(PyBytes_AS_STRING(out) + 1, e.data, (size_t)e.len);
        }
    }
    ps_encoded_done(&e);
    return out;
}

/* The value redis_stored wrote, from raw (bytes). */
static PyObject *redis_loaded(PyObject *raw)
{
    if (!PyBytes_Check(raw) || PyBytes_GET_SIZE(raw) == 0) {
        PyErr_SetString(PyExc_ValueError, "a stored value is non-empty bytes");
        return NULL;
    }
    const char *s = PyBytes_AS_STRING(raw); /* NUL-terminated */
    Py_ssize_t len = PyBytes_GET_SIZE(raw);
    if (s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno != 0 || end != s + len) {
            PyErr_SetString(PyExc_ValueError, "a stored int is not 64-bit decimal digits");
            return NULL;
        }
        return PyLong_FromLongLong(v);
    }
    return ps_decode_value((unsigned char)s[0], s + 1, (uint64_t)(len - 1));
}

/* map(f, values) into a new list, f's NULL stopping it. */
static PyObject *each(PyObject *values, PyObject *(*f)(PyObject *), const char *what)
{
    PyObject *seq = PySequence_Fast(values, what);
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *out = PyList_New(n);
    for (Py_ssize_t i = 0; out != NULL && i < n; i++) {
        PyObject *item = f(PySequence_Fast_GET_ITEM(seq, i));
        if (item == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, i, item);
    }
    Py_DECREF(seq);
    return out;
}

PyObject *ps_redis_encode_py(PyObject *module, PyObject *values)
{
    (void)module;
    return each(values, redis_stored, "redis_encode(values): an iterable");
}

PyObject *ps_redis_decode_py(PyObject *module, PyObject *raws)
{
    (void)module;
    return each(raws, redis_loaded, "redis_decode(raws): an iterable of bytes");
}
