#include "vector.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "codec.h"
#include "mapping.h"

typedef struct {
    uint64_t capacity;  /* slots */
    uint64_t heap_size; /* bytes */
    _Atomic uint64_t length;
    _Atomic uint64_t heap_used;
    _Atomic uint64_t garbage;
    uint64_t spare[3];
} ps_vector_layout;

_Static_assert(sizeof(ps_vector_layout) == PS_VECTOR_HEADER, "vector header size");

typedef struct {
    uint32_t len;
    uint32_t tag;
} ps_velem;

#define ALIGN8(n) (((n) + 7) & ~(uint64_t)7)
#define HEAP_START 8

typedef struct {
    PS_VIEW_HEAD
    ps_vector_layout *v;
    _Atomic uint64_t *slots;
    char *heap;
    uint64_t capacity, heap_size;
} ps_Vector;

static int check_geometry(uint64_t capacity, uint64_t heap_size)
{
    if (capacity < 1 || capacity > ((uint64_t)1 << 40) || heap_size < 64 || heap_size % 8 != 0 ||
        heap_size > ((uint64_t)1 << 46)) {
        ps_damaged("list", "geometry");
        return -1;
    }
    return 0;
}

/* The published length, or -1 with CorruptSegmentError if it exceeds the slots. */
static int64_t vec_length(ps_Vector *self)
{
    uint64_t len = atomic_load(&self->v->length);
    if (len > self->capacity) {
        ps_damaged("list", "length");
        return -1;
    }
    return (int64_t)len;
}

static PyObject *Vector_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)kwds;
    PyObject *mapping;
    Py_ssize_t offset;
    if (!PyArg_ParseTuple(args, "On:Vector", &mapping, &offset))
        return NULL;
    ps_vector_layout *v = (ps_vector_layout *)ps_mapping_ptr(mapping, offset, PS_VECTOR_HEADER, 8);
    if (v == NULL || check_geometry(v->capacity, v->heap_size) < 0)
        return NULL;
    char *p = ps_mapping_ptr(mapping, offset + PS_VECTOR_HEADER,
                             (Py_ssize_t)(v->capacity * 8 + v->heap_size), 8);
    if (p == NULL)
        return NULL;
    ps_Vector *self = (ps_Vector *)ps_view_new(type, mapping);
    if (self == NULL)
        return NULL;
    self->v = v;
    self->slots = (_Atomic uint64_t *)p;
    self->heap = p + v->capacity * 8;
    self->capacity = v->capacity;
    self->heap_size = v->heap_size;
    return (PyObject *)self;
}

/* init(mapping, offset, capacity, heap_size): lay out an empty vector. */
static PyObject *Vector_init(PyObject *cls, PyObject *const *args, Py_ssize_t nargs)
{
    (void)cls;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "init(mapping, offset, capacity, heap_size)");
        return NULL;
    }
    Py_ssize_t offset = PyNumber_AsSsize_t(args[1], PyExc_OverflowError);
    unsigned long long capacity = PyLong_AsUnsignedLongLong(args[2]);
    unsigned long long heap = PyLong_AsUnsignedLongLong(args[3]);
    if (PyErr_Occurred() || check_geometry(capacity, heap) < 0)
        return NULL;
    if (ps_mapping_ptr(args[0], offset + PS_VECTOR_HEADER, (Py_ssize_t)(capacity * 8 + heap), 8) ==
        NULL)
        return NULL;
    ps_vector_layout *v = (ps_vector_layout *)ps_mapping_ptr(args[0], offset, PS_VECTOR_HEADER, 8);
    if (v == NULL)
        return NULL;
    v->capacity = capacity;
    v->heap_size = heap;
    atomic_store(&v->heap_used, HEAP_START);
    Py_RETURN_NONE;
}

/* The element at heap offset off, bounds-checked, or NULL with
 * CorruptSegmentError. */
static ps_velem *velem_at(ps_Vector *self, uint64_t off)
{
    if (off < HEAP_START || off > self->heap_size - sizeof(ps_velem))
        goto damaged;
    ps_velem *e = (ps_velem *)(self->heap + off);
    if (e->len > self->heap_size - off - sizeof(ps_velem))
        goto damaged;
    return e;
damaged:
    ps_damaged("list", "element");
    return NULL;
}

/* The (tag, bytes) of the element at heap offset off, or NULL (damaged). */
static PyObject *element_at(ps_Vector *self, uint64_t off)
{
    ps_velem *e = velem_at(self, off);
    if (e == NULL)
        return NULL;
    PyObject *data = PyBytes_FromStringAndSize((char *)e + sizeof(ps_velem), e->len);
    return data == NULL ? NULL : Py_BuildValue("(IN)", e->tag, data);
}

/* value(i, missing) -> the decoded element i (negative counts from the end),
 * or missing outside the list.  Lock-free: one call for the common read. */
static PyObject *Vector_value(ps_Vector *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "value(i, missing)");
        return NULL;
    }
    Py_ssize_t i = PyNumber_AsSsize_t(args[0], PyExc_IndexError);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    int64_t len = vec_length(self);
    if (len < 0)
        return NULL;
    if (i < 0)
        i += (Py_ssize_t)len;
    if (i < 0 || i >= len)
        return Py_NewRef(args[1]);
    ps_velem *e = velem_at(self, atomic_load_explicit(&self->slots[i], memory_order_acquire));
    return e == NULL ? NULL : ps_decode_value(e->tag, (char *)e + sizeof(ps_velem), e->len);
}

/* Append the element's bytes to the heap; its offset, 0 when the heap is full,
 * or 1 with CorruptSegmentError when the heap's counter is damaged. */
static uint64_t heap_add(ps_Vector *self, uint32_t tag, const char *data, uint64_t len)
{
    uint64_t used = atomic_load(&self->v->heap_used);
    uint64_t need = sizeof(ps_velem) + ALIGN8(len);
    if (used < HEAP_START || used % 8 != 0 || used > self->heap_size) {
        ps_damaged("list", "heap counter");
        return 1;
    }
    if (len > UINT32_MAX || need > self->heap_size - used)
        return 0;
    ps_velem *e = (ps_velem *)(self->heap + used);
    e->len = (uint32_t)len;
    e->tag = tag;
    memcpy((char *)e + sizeof(ps_velem), data, len);
    atomic_store(&self->v->heap_used, used + need); /* claim before publishing */
    return used;
}

static int parse_item(PyObject *tag_obj, PyObject *data, uint32_t *tag)
{
    unsigned long t = PyLong_AsUnsignedLong(tag_obj);
    if ((t == (unsigned long)-1 && PyErr_Occurred()) || t > UINT32_MAX || !PyBytes_Check(data)) {
        PyErr_Clear();
        PyErr_SetString(PyExc_TypeError, "an element is (tag: int, data: bytes)");
        return -1;
    }
    *tag = (uint32_t)t;
    return 0;
}

/* extend(items) -> int: append (tag, bytes) items in order while they fit;
 * how many were appended.  The caller holds the list's lock. */
static PyObject *Vector_extend(ps_Vector *self, PyObject *items)
{
    PyObject *seq = PySequence_Fast(items, "extend(items: list of (tag, bytes))");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq), done = 0;
    int64_t length = vec_length(self);
    if (length < 0) {
        Py_DECREF(seq);
        return NULL;
    }
    uint64_t len = (uint64_t)length;
    for (; done < n && len < self->capacity; done++, len++) {
        PyObject *it = PySequence_Fast_GET_ITEM(seq, done);
        uint32_t tag;
        if (!PyTuple_Check(it) || PyTuple_GET_SIZE(it) != 2 ||
            parse_item(PyTuple_GET_ITEM(it, 0), PyTuple_GET_ITEM(it, 1), &tag) < 0) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "an element is (tag: int, data: bytes)");
            Py_DECREF(seq);
            return NULL;
        }
        PyObject *data = PyTuple_GET_ITEM(it, 1);
        uint64_t off =
            heap_add(self, tag, PyBytes_AS_STRING(data), (uint64_t)PyBytes_GET_SIZE(data));
        if (off == 1) {
            Py_DECREF(seq);
            return NULL;
        }
        if (off == 0)
            break;
        atomic_store_explicit(&self->slots[len], off, memory_order_release);
        atomic_store(&self->v->length, len + 1); /* publish */
    }
    Py_DECREF(seq);
    return PyLong_FromSsize_t(done);
}

/* append(tag, data) -> bool: False when full (the caller grows and retries). */
static PyObject *Vector_append(ps_Vector *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint32_t tag;
    if (nargs != 2 || parse_item(args[0], args[1], &tag) < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "append(tag: int, data: bytes)");
        return NULL;
    }
    int64_t len = vec_length(self);
    if (len < 0)
        return NULL;
    if ((uint64_t)len >= self->capacity)
        Py_RETURN_FALSE;
    uint64_t off =
        heap_add(self, tag, PyBytes_AS_STRING(args[1]), (uint64_t)PyBytes_GET_SIZE(args[1]));
    if (off == 1)
        return NULL;
    if (off == 0)
        Py_RETURN_FALSE;
    atomic_store_explicit(&self->slots[len], off, memory_order_release);
    atomic_store(&self->v->length, len + 1); /* publish */
    Py_RETURN_TRUE;
}

/* set(i, tag, data) -> bool: replace element i (0 <= i < length); False when
 * the heap is full.  IndexError outside the list. */
static PyObject *Vector_set(ps_Vector *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint32_t tag;
    if (nargs != 3 || parse_item(args[1], args[2], &tag) < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "set(i, tag: int, data: bytes)");
        return NULL;
    }
    Py_ssize_t i = PyNumber_AsSsize_t(args[0], PyExc_IndexError);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    int64_t len = vec_length(self);
    if (len < 0)
        return NULL;
    if (i < 0 || i >= len) {
        PyErr_SetString(PyExc_IndexError, "list assignment index out of range");
        return NULL;
    }
    uint64_t off =
        heap_add(self, tag, PyBytes_AS_STRING(args[2]), (uint64_t)PyBytes_GET_SIZE(args[2]));
    if (off == 1)
        return NULL;
    if (off == 0)
        Py_RETURN_FALSE;
    uint64_t was = atomic_exchange(&self->slots[i], off);
    if (was >= HEAP_START && was <= self->heap_size - sizeof(ps_velem)) {
        ps_velem *old = (ps_velem *)(self->heap + was);
        atomic_fetch_add(&self->v->garbage, sizeof(ps_velem) + ALIGN8(old->len));
    }
    Py_RETURN_TRUE;
}

/* pop_last() -> (tag, bytes) of the removed last element, or None if empty. */
static PyObject *Vector_pop_last(ps_Vector *self, PyObject *unused)
{
    (void)unused;
    int64_t len = vec_length(self);
    if (len <= 0)
        return len < 0 ? NULL : Py_NewRef(Py_None);
    PyObject *item = element_at(self, atomic_load(&self->slots[len - 1]));
    if (item == NULL)
        return NULL;
    atomic_store(&self->v->length, len - 1); /* publish */
    Py_ssize_t size = PyBytes_GET_SIZE(PyTuple_GET_ITEM(item, 1));
    atomic_fetch_add(&self->v->garbage, sizeof(ps_velem) + ALIGN8((uint64_t)size));
    return item;
}

/* The elements, read lock-free: as (tag, bytes) items, or decoded values. */
static PyObject *elements(ps_Vector *self, int decoded)
{
    int64_t len = vec_length(self);
    PyObject *out = len < 0 ? NULL : PyList_New((Py_ssize_t)len);
    if (out == NULL)
        return NULL;
    for (int64_t i = 0; i < len; i++) {
        uint64_t off = atomic_load_explicit(&self->slots[i], memory_order_acquire);
        ps_velem *e = decoded ? velem_at(self, off) : NULL;
        PyObject *item = !decoded ? element_at(self, off)
                         : e      ? ps_decode_value(e->tag, (char *)e + sizeof(ps_velem), e->len)
                                  : NULL;
        if (item == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, (Py_ssize_t)i, item);
    }
    return out;
}

/* items() -> list of (tag, bytes). */
static PyObject *Vector_items(ps_Vector *self, PyObject *unused)
{
    (void)unused;
    return elements(self, 0);
}

/* values() -> list of the decoded elements. */
static PyObject *Vector_values(ps_Vector *self, PyObject *unused)
{
    (void)unused;
    return elements(self, 1);
}

/* Whether element e equals value: by the stored bytes when value has a simple
 * encoding (vtag, vdata: an exact str, bytes or int meets only an element
 * of the same tag; vtag is UINT32_MAX when value has none), else by decoding
 * e and comparing with ==.  1, 0, or -1 with an exception. */
static int element_equals(const ps_velem *e, PyObject *value, uint32_t vtag, const char *vdata,
                          Py_ssize_t vlen)
{
    const char *data = (const char *)e + sizeof(ps_velem);
    if (vtag != UINT32_MAX && e->tag != TAG_PICKLED)
        return e->tag == vtag && (Py_ssize_t)e->len == vlen && memcmp(data, vdata, e->len) == 0;
    PyObject *item = ps_decode_value(e->tag, data, e->len);
    if (item == NULL)
        return -1;
    int eq = PyObject_RichCompareBool(item, value, Py_EQ); /* user code: no lock is held */
    Py_DECREF(item);
    return eq;
}

/* find(value, start, stop, count) -> the first index in [start, stop) whose
 * element equals value (-1: none), or with count true how many do.  Lock-free;
 * elements are compared where they lie, decoding only those that must be. */
static PyObject *Vector_find(ps_Vector *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "find(value, start, stop, count)");
        return NULL;
    }
    Py_ssize_t start = PyNumber_AsSsize_t(args[1], PyExc_OverflowError);
    Py_ssize_t stop = PyNumber_AsSsize_t(args[2], PyExc_OverflowError);
    int counting = PyObject_IsTrue(args[3]);
    if ((start == -1 || stop == -1) && PyErr_Occurred())
        return NULL;
    if (counting < 0)
        return NULL;
    uint32_t vtag;
    const char *vdata;
    Py_ssize_t vlen;
    char int_buf[8];
    if (!ps_encode_fast(args[0], &vtag, &vdata, &vlen, int_buf))
        vtag = UINT32_MAX;
    Py_ssize_t found = 0;
    for (Py_ssize_t i = start < 0 ? 0 : start; i < stop; i++) {
        int64_t len = vec_length(self); /* may shrink while __eq__ runs */
        if (len < 0)
            return NULL;
        if (i >= len)
            break;
        ps_velem *e = velem_at(self, atomic_load_explicit(&self->slots[i], memory_order_acquire));
        if (e == NULL)
            return NULL;
        int eq = element_equals(e, args[0], vtag, vdata, vlen);
        if (eq < 0)
            return NULL;
        if (eq && !counting)
            return PyLong_FromSsize_t(i);
        found += eq;
    }
    return PyLong_FromSsize_t(counting ? found : -1);
}

/* equals(values) -> bool: whether the elements equal the list values, item by
 * item as list == list compares (by stored bytes where the item has a simple
 * encoding, else decoded and compared with ==).  Lock-free. */
static PyObject *Vector_equals(ps_Vector *self, PyObject *values)
{
    if (!PyList_Check(values)) {
        PyErr_SetString(PyExc_TypeError, "equals(values: list)");
        return NULL;
    }
    for (Py_ssize_t i = 0;; i++) {
        int64_t len = vec_length(self); /* read again: == of an element may change it */
        if (len < 0)
            return NULL;
        if (len != PyList_GET_SIZE(values))
            Py_RETURN_FALSE;
        if (i >= len)
            Py_RETURN_TRUE;
        ps_velem *e = velem_at(self, atomic_load_explicit(&self->slots[i], memory_order_acquire));
        if (e == NULL)
            return NULL;
        PyObject *value = Py_NewRef(PyList_GET_ITEM(values, i));
        uint32_t vtag;
        const char *vdata;
        Py_ssize_t vlen;
        char int_buf[8];
        if (!ps_encode_fast(value, &vtag, &vdata, &vlen, int_buf))
            vtag = UINT32_MAX;
        int eq = element_equals(e, value, vtag, vdata, vlen);
        Py_DECREF(value);
        if (eq <= 0)
            return eq < 0 ? NULL : Py_NewRef(Py_False);
    }
}

/* recount(): after a writer died; the length is published last, so only a
 * damaged length needs clamping. */
static PyObject *Vector_recount(ps_Vector *self, PyObject *unused)
{
    (void)unused;
    if (atomic_load(&self->v->length) > self->capacity)
        atomic_store(&self->v->length, self->capacity);
    Py_RETURN_NONE;
}

static Py_ssize_t Vector_len(ps_Vector *self)
{
    uint64_t len = atomic_load(&self->v->length);
    return (Py_ssize_t)(len < self->capacity ? len : self->capacity);
}

static PyMethodDef Vector_methods[] = {
    {"init", (PyCFunction)(void (*)(void))Vector_init, METH_FASTCALL | METH_CLASS,
     "init(mapping, offset, capacity, heap_size): lay out an empty vector."},
    {"value", (PyCFunction)(void (*)(void))Vector_value, METH_FASTCALL,
     "value(i, missing) -> element i decoded (i < 0 counts from the end) | missing."},
    {"append", (PyCFunction)(void (*)(void))Vector_append, METH_FASTCALL,
     "append(tag, data) -> bool (False: full)."},
    {"extend", (PyCFunction)Vector_extend, METH_O, "extend(items) -> how many were appended."},
    {"set", (PyCFunction)(void (*)(void))Vector_set, METH_FASTCALL,
     "set(i, tag, data) -> bool (False: heap full)."},
    {"pop_last", (PyCFunction)Vector_pop_last, METH_NOARGS, "pop_last() -> (tag, bytes) | None"},
    {"items", (PyCFunction)Vector_items, METH_NOARGS, "items() -> [(tag, bytes)], lock-free."},
    {"values", (PyCFunction)Vector_values, METH_NOARGS, "values() -> decoded elements, lock-free."},
    {"equals", (PyCFunction)Vector_equals, METH_O,
     "equals(values: list) -> bool: element by element, as list == list."},
    {"find", (PyCFunction)(void (*)(void))Vector_find, METH_FASTCALL,
     "find(value, start, stop, count) -> first index equal to value (-1), or the count."},
    {"recount", (PyCFunction)Vector_recount, METH_NOARGS, "recount(): repair after a death."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods Vector_as_sequence = {
    .sq_length = (lenfunc)Vector_len,
};

PyTypeObject ps_VectorType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "procshare._core.Vector",
    .tp_basicsize = sizeof(ps_Vector),
    .tp_dealloc = ps_view_dealloc,
    .tp_as_sequence = &Vector_as_sequence,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Vector(mapping, offset): List's slots and heap inside a mapping.",
    .tp_methods = Vector_methods,
    .tp_new = Vector_new,
};
