#include "vector.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "codec.h"
#include "mapping.h"

typedef struct {
    uint64_t capacity;      /* slots in each of the two arrays */
    uint64_t heap_size;     /* bytes */
    _Atomic uint64_t state; /* version, active array and length: see below */
    _Atomic uint64_t heap_used;
    _Atomic uint64_t garbage;
    _Atomic uint64_t changes; /* bumped by every write: "unchanged since" checks */
    uint64_t spare[2];
} ps_vector_layout;

_Static_assert(sizeof(ps_vector_layout) == PS_VECTOR_HEADER, "vector header size");

/* The state word: the length in the low LEN_BITS, which of the two slot
 * arrays is active above it, and a version above that, bumped whenever the
 * active array changes.  Moving elements (insert, removal, reordering) writes
 * the new order into the inactive array, then publishes it, version and all,
 * with one store: a writer killed while copying leaves the active array
 * untouched, and a reader that finds the version changed under it reads
 * again (the array it was reading may be rewritten by the next move). */
#define LEN_BITS 41
#define LEN_MASK (((uint64_t)1 << LEN_BITS) - 1)
#define ACTIVE_BIT ((uint64_t)1 << LEN_BITS)
#define VERSION_ONE ((uint64_t)1 << (LEN_BITS + 1))

typedef struct {
    uint32_t len;
    uint32_t tag;
} ps_velem;

#define ALIGN8(n) (((n) + 7) & ~(uint64_t)7)
#define HEAP_START 8

typedef struct {
    PS_VIEW_HEAD
    ps_vector_layout *v;
    _Atomic uint64_t *slots; /* the two arrays, capacity slots each */
    char *heap;
    uint64_t capacity, heap_size;
} ps_Vector;

/* One published state: its word, the active array and the length. */
typedef struct {
    uint64_t state;
    _Atomic uint64_t *slots;
    int64_t length;
} ps_vview;

static int check_geometry(uint64_t capacity, uint64_t heap_size)
{
    if (capacity < 1 || capacity > ((uint64_t)1 << 40) || heap_size < 64 || heap_size % 8 != 0 ||
        heap_size > ((uint64_t)1 << 46)) {
        ps_damaged("list", "geometry");
        return -1;
    }
    return 0;
}

/* The published state, or -1 with CorruptSegmentError if its length exceeds
 * the slots. */
static int view_of(ps_Vector *self, ps_vview *view)
{
    uint64_t s = atomic_load(&self->v->state);
    if ((s & LEN_MASK) > self->capacity) {
        ps_damaged("list", "length");
        return -1;
    }
    view->state = s;
    view->slots = self->slots + (s & ACTIVE_BIT ? self->capacity : 0);
    view->length = (int64_t)(s & LEN_MASK);
    return 0;
}

/* Whether the active array changed since view was taken. */
static int moved_since(ps_Vector *self, const ps_vview *view)
{
    return (atomic_load(&self->v->state) & ~LEN_MASK) != (view->state & ~LEN_MASK);
}

/* A writer (holding the lock) publishes a new length in the same array. */
static void publish_length(ps_Vector *self, const ps_vview *view, uint64_t length)
{
    atomic_store(&self->v->state, (view->state & ~LEN_MASK) | length);
    atomic_fetch_add(&self->v->changes, 1);
}

/* Vector(mapping, offset[, size]): the vector whose header is at offset, which
 * may span size bytes from there (by default, to the end of the mapping: a
 * vector in an arena slot is confined to its slot). */
static PyObject *Vector_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)kwds;
    PyObject *mapping;
    Py_ssize_t offset, size = -1;
    if (ps_parse_place(args, "Vector", &mapping, &offset, &size) < 0)
        return NULL;
    ps_vector_layout *v = (ps_vector_layout *)ps_mapping_ptr(mapping, offset, PS_VECTOR_HEADER, 8);
    if (v == NULL)
        return NULL;
    uint64_t capacity = v->capacity, heap_size = v->heap_size;
    if (check_geometry(capacity, heap_size) < 0)
        return NULL;
    char *p =
        ps_body_ptr(mapping, offset, PS_VECTOR_HEADER, capacity * 16 + heap_size, size, "list");
    if (p == NULL)
        return NULL;
    ps_Vector *self = (ps_Vector *)ps_view_new(type, mapping);
    if (self == NULL)
        return NULL;
    self->v = v;
    self->slots = (_Atomic uint64_t *)p;
    self->heap = p + capacity * 16;
    self->capacity = capacity;
    self->heap_size = heap_size;
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
    if (ps_mapping_ptr(args[0], offset + PS_VECTOR_HEADER, (Py_ssize_t)(capacity * 16 + heap), 8) ==
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

/* The heap offset of element i (0 <= i or counted from the end) as one
 * published state has it: 0 when i is outside the list, 1 with an exception. */
static uint64_t offset_of(ps_Vector *self, Py_ssize_t i)
{
    for (;;) {
        ps_vview view;
        if (view_of(self, &view) < 0)
            return 1;
        Py_ssize_t n = i < 0 ? i + (Py_ssize_t)view.length : i;
        if (n < 0 || n >= (Py_ssize_t)view.length)
            return 0;
        uint64_t off = atomic_load_explicit(&view.slots[n], memory_order_acquire);
        if (!moved_since(self, &view))
            return off;
    }
}

/* value(i, missing) -> the decoded element i (negative counts from the end),
 * or missing outside the list.  Lock-free: one call for the common read. */
PyObject *ps_vector_at(PyObject *vector, Py_ssize_t i, PyObject *missing)
{
    ps_Vector *self = (ps_Vector *)vector;
    uint64_t off = offset_of(self, i);
    if (off <= 1)
        return off ? NULL : Py_NewRef(missing);
    ps_velem *e = velem_at(self, off);
    return e == NULL ? NULL : ps_decode_value(e->tag, (char *)e + sizeof(ps_velem), e->len);
}

static PyObject *Vector_value(ps_Vector *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "value(i, missing)");
        return NULL;
    }
    Py_ssize_t i = PyNumber_AsSsize_t(args[0], PyExc_IndexError);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    return ps_vector_at((PyObject *)self, i, args[1]);
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

/* ---- packed elements: many appended in one call ------------------------ */

/* Heap records written straight into a bytes object that grows as needed. */
typedef struct {
    PyObject *bytes;
    size_t used, cap;
} ps_packing;

static int pack_one(ps_packing *p, uint32_t tag, const char *data, Py_ssize_t len)
{
    if ((uint64_t)len > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "a list element is limited to 4 GiB");
        return -1;
    }
    size_t need = sizeof(ps_velem) + (size_t)ALIGN8((uint64_t)len);
    if (need > p->cap - p->used) {
        size_t cap = p->cap;
        while (need > cap - p->used)
            cap *= 2;
        if (_PyBytes_Resize(&p->bytes, (Py_ssize_t)cap) < 0)
            return -1;
        p->cap = cap;
    }
    char *at = PyBytes_AS_STRING(p->bytes) + p->used;
    ps_velem e = {.len = (uint32_t)len, .tag = tag};
    memcpy(at, &e, sizeof e);
    memcpy(at + sizeof e, data, (size_t)len);
    memset(at + sizeof e + len, 0, need - sizeof e - (size_t)len);
    p->used += need;
    return 0;
}

/* pack(values, encoded) -> (count, packed): the values as heap records ({len,
 * tag}, the bytes, zero padding to 8), in order, for extend_packed.  With
 * encoded, each value is already a (tag, bytes) element.  Called before the
 * list's lock is taken, so pickling runs outside it. */
PyObject *ps_pack_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "pack(values, encoded: bool)");
        return NULL;
    }
    int encoded = PyObject_IsTrue(args[1]);
    PyObject *seq = encoded < 0 ? NULL : PySequence_Fast(args[0], "pack(values): an iterable");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    /* room for n small elements (16 bytes each, an int's) to start with */
    ps_packing p = {.bytes = NULL, .used = 0, .cap = 16 * (size_t)n + 64};
    p.bytes = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)p.cap);
    if (p.bytes == NULL) {
        Py_DECREF(seq);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *it = PySequence_Fast_GET_ITEM(seq, i);
        int failed;
        if (encoded) {
            uint32_t tag;
            failed = !PyTuple_Check(it) || PyTuple_GET_SIZE(it) != 2 ||
                     parse_item(PyTuple_GET_ITEM(it, 0), PyTuple_GET_ITEM(it, 1), &tag) < 0;
            if (failed && !PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "an element is (tag: int, data: bytes)");
            PyObject *data = failed ? NULL : PyTuple_GET_ITEM(it, 1);
            failed =
                failed || pack_one(&p, tag, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data)) < 0;
        } else {
            ps_encoded e;
            failed = ps_encode(it, &e) < 0;
            if (!failed) {
                failed = pack_one(&p, e.tag, e.data, e.len) < 0;
                ps_encoded_done(&e);
            }
        }
        if (failed) {
            Py_XDECREF(p.bytes);
            Py_DECREF(seq);
            return NULL;
        }
    }
    Py_DECREF(seq);
    if (_PyBytes_Resize(&p.bytes, (Py_ssize_t)p.used) < 0)
        return NULL;
    return Py_BuildValue("(nN)", n, p.bytes);
}

/* extend_packed(packed, start) -> (appended, next): append the records of
 * packed from byte start on while the slots and the heap have room; the
 * length is published once, after the last.  next is where the first record
 * not appended starts (len(packed) when all were).  The caller holds the
 * list's lock. */
static PyObject *Vector_extend_packed(ps_Vector *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t start = nargs == 2 ? PyNumber_AsSsize_t(args[1], PyExc_OverflowError) : -1;
    if (nargs != 2 || !PyBytes_Check(args[0]) || (start == -1 && PyErr_Occurred())) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "extend_packed(packed: bytes, start: int)");
        return NULL;
    }
    const char *buf = PyBytes_AS_STRING(args[0]);
    uint64_t size = (uint64_t)PyBytes_GET_SIZE(args[0]);
    if (start < 0 || (uint64_t)start > size || start % 8 != 0) {
        PyErr_SetString(PyExc_ValueError, "extend_packed: start is not a record's");
        return NULL;
    }
    ps_vview view;
    if (view_of(self, &view) < 0)
        return NULL;
    uint64_t used = atomic_load(&self->v->heap_used);
    if (used < HEAP_START || used % 8 != 0 || used > self->heap_size) {
        ps_damaged("list", "heap counter");
        return NULL;
    }
    uint64_t len = (uint64_t)view.length, pos = (uint64_t)start, done = 0;
    while (pos < size && len < self->capacity) {
        ps_velem e;
        if (size - pos < sizeof e) {
            PyErr_SetString(PyExc_ValueError, "extend_packed: a record is cut short");
            return NULL;
        }
        memcpy(&e, buf + pos, sizeof e);
        uint64_t need = sizeof e + ALIGN8((uint64_t)e.len);
        if (need > size - pos) {
            PyErr_SetString(PyExc_ValueError, "extend_packed: a record is cut short");
            return NULL;
        }
        if (need > self->heap_size - used)
            break;
        memcpy(self->heap + used, buf + pos, need);
        atomic_store_explicit(&view.slots[len], used, memory_order_relaxed);
        used += need, pos += need, len++, done++;
    }
    if (done) {
        atomic_store(&self->v->heap_used, used); /* claimed before the length publishes */
        publish_length(self, &view, len);
    }
    return Py_BuildValue("(KK)", (unsigned long long)done, (unsigned long long)pos);
}

/* copy_from(other) -> int: append every element of other (the generation
 * this one replaces) as it is; the new length.  The caller sized this table
 * for them: a shortfall raises RuntimeError. */
static PyObject *Vector_copy_from(ps_Vector *self, PyObject *other_obj)
{
    if (!PyObject_TypeCheck(other_obj, &ps_VectorType)) {
        PyErr_SetString(PyExc_TypeError, "copy_from(other: Vector)");
        return NULL;
    }
    ps_Vector *other = (ps_Vector *)other_obj;
    ps_vview mine, theirs;
    if (view_of(self, &mine) < 0 || view_of(other, &theirs) < 0)
        return NULL;
    uint64_t len = (uint64_t)mine.length;
    for (int64_t i = 0; i < theirs.length; i++) {
        ps_velem *e = velem_at(other, atomic_load(&theirs.slots[i]));
        if (e == NULL)
            return NULL;
        uint64_t off =
            len < self->capacity ? heap_add(self, e->tag, (char *)e + sizeof(ps_velem), e->len) : 0;
        if (off == 1)
            return NULL;
        if (off == 0) {
            PyErr_SetString(PyExc_RuntimeError, "copy_from: the elements did not fit");
            return NULL;
        }
        atomic_store_explicit(&mine.slots[len++], off, memory_order_relaxed);
    }
    publish_length(self, &mine, len);
    return PyLong_FromUnsignedLongLong(len);
}

/* heap() -> (used, garbage, size): bytes of the element heap. */
static PyObject *Vector_heap(ps_Vector *self, PyObject *unused)
{
    (void)unused;
    return Py_BuildValue("(KKK)", (unsigned long long)atomic_load(&self->v->heap_used),
                         (unsigned long long)atomic_load(&self->v->garbage),
                         (unsigned long long)self->heap_size);
}

/* append(tag, data) -> bool: False when full (the caller grows and retries). */
PyObject *ps_vector_append(PyObject *vector, PyObject *const *args, Py_ssize_t nargs)
{
    ps_Vector *self = (ps_Vector *)vector;
    uint32_t tag;
    if (nargs != 2 || parse_item(args[0], args[1], &tag) < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "append(tag: int, data: bytes)");
        return NULL;
    }
    ps_vview view;
    if (view_of(self, &view) < 0)
        return NULL;
    if ((uint64_t)view.length >= self->capacity)
        Py_RETURN_FALSE;
    uint64_t off =
        heap_add(self, tag, PyBytes_AS_STRING(args[1]), (uint64_t)PyBytes_GET_SIZE(args[1]));
    if (off == 1)
        return NULL;
    if (off == 0)
        Py_RETURN_FALSE;
    atomic_store_explicit(&view.slots[view.length], off, memory_order_release);
    publish_length(self, &view, (uint64_t)view.length + 1);
    Py_RETURN_TRUE;
}

/* Parse (i, tag, data) for sig, and take the published state.  0, or -1
 * with an exception. */
static int parse_placed(ps_Vector *self, const char *sig, PyObject *const *args, Py_ssize_t nargs,
                        Py_ssize_t *i, uint32_t *tag, ps_vview *view)
{
    if (nargs != 3 || parse_item(args[1], args[2], tag) < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, sig);
        return -1;
    }
    *i = PyNumber_AsSsize_t(args[0], PyExc_IndexError);
    if (*i == -1 && PyErr_Occurred())
        return -1;
    return view_of(self, view);
}

/* set(i, tag, data) -> bool: replace element i (0 <= i < length); False when
 * the heap is full.  IndexError outside the list. */
PyObject *ps_vector_set(PyObject *vector, PyObject *const *args, Py_ssize_t nargs)
{
    ps_Vector *self = (ps_Vector *)vector;
    uint32_t tag;
    Py_ssize_t i;
    ps_vview view;
    if (parse_placed(self, "set(i, tag: int, data: bytes)", args, nargs, &i, &tag, &view) < 0)
        return NULL;
    if (i < 0 || i >= view.length) {
        PyErr_SetString(PyExc_IndexError, "list assignment index out of range");
        return NULL;
    }
    uint64_t off =
        heap_add(self, tag, PyBytes_AS_STRING(args[2]), (uint64_t)PyBytes_GET_SIZE(args[2]));
    if (off == 1)
        return NULL;
    if (off == 0)
        Py_RETURN_FALSE;
    uint64_t was = atomic_exchange(&view.slots[i], off);
    atomic_fetch_add(&self->v->changes, 1);
    if (was >= HEAP_START && was <= self->heap_size - sizeof(ps_velem)) {
        ps_velem *old = (ps_velem *)(self->heap + was);
        atomic_fetch_add(&self->v->garbage, sizeof(ps_velem) + ALIGN8(old->len));
    }
    Py_RETURN_TRUE;
}

/* pop_last() -> (tag, bytes) of the removed last element, or None if empty. */
PyObject *ps_vector_pop_last(PyObject *vector, PyObject *unused)
{
    ps_Vector *self = (ps_Vector *)vector;
    (void)unused;
    ps_vview view;
    if (view_of(self, &view) < 0)
        return NULL;
    if (view.length == 0)
        Py_RETURN_NONE;
    PyObject *item = element_at(self, atomic_load(&view.slots[view.length - 1]));
    if (item == NULL)
        return NULL;
    publish_length(self, &view, (uint64_t)view.length - 1);
    Py_ssize_t size = PyBytes_GET_SIZE(PyTuple_GET_ITEM(item, 1));
    atomic_fetch_add(&self->v->garbage, sizeof(ps_velem) + ALIGN8((uint64_t)size));
    return item;
}

/* The elements of one published state, read lock-free: as (tag, bytes)
 * items, or decoded values.  The offsets are copied first and used only if
 * the active array did not change meanwhile. */
static PyObject *elements(ps_Vector *self, int decoded)
{
    ps_vview view;
    uint64_t *offs = NULL;
    for (;;) {
        if (view_of(self, &view) < 0)
            return NULL;
        uint64_t *grown = PyMem_Realloc(offs, sizeof(uint64_t) * (size_t)(view.length + 1));
        if (grown == NULL) {
            PyMem_Free(offs);
            return PyErr_NoMemory();
        }
        offs = grown;
        for (int64_t i = 0; i < view.length; i++)
            offs[i] = atomic_load_explicit(&view.slots[i], memory_order_acquire);
        if (!moved_since(self, &view))
            break;
    }
    PyObject *out = PyList_New((Py_ssize_t)view.length);
    for (int64_t i = 0; out != NULL && i < view.length; i++) {
        ps_velem *e = decoded ? velem_at(self, offs[i]) : NULL;
        PyObject *item = !decoded ? element_at(self, offs[i])
                         : e      ? ps_decode_value(e->tag, (char *)e + sizeof(ps_velem), e->len)
                                  : NULL;
        if (item == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, (Py_ssize_t)i, item);
    }
    PyMem_Free(offs);
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
    ps_vview view;
    if (view_of(self, &view) < 0)
        return NULL;
    for (Py_ssize_t i = start < 0 ? 0 : start; i < stop; i++) {
        uint64_t off =
            i < view.length ? atomic_load_explicit(&view.slots[i], memory_order_acquire) : 0;
        if (moved_since(self, &view)) { /* elements moved: scan the new order from the start */
            if (view_of(self, &view) < 0)
                return NULL;
            i = (start < 0 ? 0 : start) - 1;
            found = 0;
            continue;
        }
        if (i >= view.length)
            break;
        ps_velem *e = velem_at(self, off);
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
    ps_vview view;
    if (view_of(self, &view) < 0)
        return NULL;
    for (Py_ssize_t i = 0;; i++) {
        /* == of an element may run code that changes either list: read again */
        if (PyList_GET_SIZE(values) != view.length)
            Py_RETURN_FALSE;
        if (i >= view.length)
            Py_RETURN_TRUE;
        uint64_t off = atomic_load_explicit(&view.slots[i], memory_order_acquire);
        if (moved_since(self, &view)) {
            if (view_of(self, &view) < 0)
                return NULL;
            i = -1;
            continue;
        }
        ps_velem *e = velem_at(self, off);
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

/* ---- moving elements: the inactive array, then one store ---------------- */

/* Copy n slots (relaxed: readers check the version, not these stores). */
static void copy_slots(_Atomic uint64_t *dst, _Atomic uint64_t *src, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        atomic_store_explicit(&dst[i], atomic_load_explicit(&src[i], memory_order_relaxed),
                              memory_order_relaxed);
}

/* The array that is not active in view: where the next order is written. */
static _Atomic uint64_t *inactive(ps_Vector *self, const ps_vview *view)
{
    return self->slots + (view->state & ACTIVE_BIT ? 0 : self->capacity);
}

/* Publish the inactive array, holding length elements, as the active one. */
static void publish_moved(ps_Vector *self, const ps_vview *view, uint64_t length)
{
    uint64_t version = (view->state & ~(LEN_MASK | ACTIVE_BIT)) + VERSION_ONE; /* wraps */
    atomic_store(&self->v->state, version | ((view->state ^ ACTIVE_BIT) & ACTIVE_BIT) | length);
    atomic_fetch_add(&self->v->changes, 1);
}

/* insert(i, tag, data) -> bool: put the element before index i (0 <= i <=
 * length); False when the slots or the heap are full (the caller grows).
 * The caller holds the list's lock. */
static PyObject *Vector_insert(ps_Vector *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint32_t tag;
    Py_ssize_t i;
    ps_vview view;
    if (parse_placed(self, "insert(i, tag: int, data: bytes)", args, nargs, &i, &tag, &view) < 0)
        return NULL;
    if (i < 0 || i > view.length) {
        PyErr_SetString(PyExc_IndexError, "insert index out of range");
        return NULL;
    }
    if ((uint64_t)view.length >= self->capacity)
        Py_RETURN_FALSE;
    uint64_t off =
        heap_add(self, tag, PyBytes_AS_STRING(args[2]), (uint64_t)PyBytes_GET_SIZE(args[2]));
    if (off <= 1)
        return off ? NULL : Py_NewRef(Py_False);
    _Atomic uint64_t *next = inactive(self, &view);
    copy_slots(next, view.slots, (uint64_t)i);
    atomic_store_explicit(&next[i], off, memory_order_relaxed);
    copy_slots(next + i + 1, view.slots + i, (uint64_t)(view.length - i));
    publish_moved(self, &view, (uint64_t)view.length + 1);
    Py_RETURN_TRUE;
}

/* remove_at(i) -> (tag, bytes) of the element removed from index i (0 <= i <
 * length).  The caller holds the list's lock. */
static PyObject *Vector_remove_at(ps_Vector *self, PyObject *arg)
{
    Py_ssize_t i = PyNumber_AsSsize_t(arg, PyExc_IndexError);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    ps_vview view;
    if (view_of(self, &view) < 0)
        return NULL;
    if (i < 0 || i >= view.length) {
        PyErr_SetString(PyExc_IndexError, "list index out of range");
        return NULL;
    }
    PyObject *item = element_at(self, atomic_load(&view.slots[i]));
    if (item == NULL)
        return NULL;
    _Atomic uint64_t *next = inactive(self, &view);
    copy_slots(next, view.slots, (uint64_t)i);
    copy_slots(next + i, view.slots + i + 1, (uint64_t)(view.length - i - 1));
    publish_moved(self, &view, (uint64_t)view.length - 1);
    Py_ssize_t size = PyBytes_GET_SIZE(PyTuple_GET_ITEM(item, 1));
    atomic_fetch_add(&self->v->garbage, sizeof(ps_velem) + ALIGN8((uint64_t)size));
    return item;
}

/* changes() -> int: how many writes the list has had (any write bumps it). */
static PyObject *Vector_changes(ps_Vector *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromUnsignedLongLong(atomic_load(&self->v->changes));
}

/* recount(): after a writer died; the length is published last, so only a
 * damaged length needs clamping. */
static PyObject *Vector_recount(ps_Vector *self, PyObject *unused)
{
    (void)unused;
    uint64_t s = atomic_load(&self->v->state);
    if ((s & LEN_MASK) > self->capacity)
        atomic_store(&self->v->state, (s & ~LEN_MASK) | self->capacity);
    Py_RETURN_NONE;
}

Py_ssize_t ps_vector_len(PyObject *vector)
{
    ps_Vector *self = (ps_Vector *)vector;
    uint64_t len = atomic_load(&self->v->state) & LEN_MASK;
    return (Py_ssize_t)(len < self->capacity ? len : self->capacity);
}

static PyMethodDef Vector_methods[] = {
    {"init", (PyCFunction)(void (*)(void))Vector_init, METH_FASTCALL | METH_CLASS,
     "init(mapping, offset, capacity, heap_size): lay out an empty vector."},
    {"value", (PyCFunction)(void (*)(void))Vector_value, METH_FASTCALL,
     "value(i, missing) -> element i decoded (i < 0 counts from the end) | missing."},
    {"append", (PyCFunction)(void (*)(void))ps_vector_append, METH_FASTCALL,
     "append(tag, data) -> bool (False: full)."},
    {"extend_packed", (PyCFunction)(void (*)(void))Vector_extend_packed, METH_FASTCALL,
     "extend_packed(packed, start) -> (appended, next): records appended while they fit."},
    {"copy_from", (PyCFunction)Vector_copy_from, METH_O,
     "copy_from(other) -> length: append other's elements (the caller sized this table)."},
    {"heap", (PyCFunction)Vector_heap, METH_NOARGS, "heap() -> (used, garbage, size) in bytes."},
    {"set", (PyCFunction)(void (*)(void))ps_vector_set, METH_FASTCALL,
     "set(i, tag, data) -> bool (False: heap full)."},
    {"pop_last", (PyCFunction)ps_vector_pop_last, METH_NOARGS, "pop_last() -> (tag, bytes) | None"},
    {"items", (PyCFunction)Vector_items, METH_NOARGS, "items() -> [(tag, bytes)], lock-free."},
    {"values", (PyCFunction)Vector_values, METH_NOARGS, "values() -> decoded elements, lock-free."},
    {"equals", (PyCFunction)Vector_equals, METH_O,
     "equals(values: list) -> bool: element by element, as list == list."},
    {"find", (PyCFunction)(void (*)(void))Vector_find, METH_FASTCALL,
     "find(value, start, stop, count) -> first index equal to value (-1), or the count."},
    {"insert", (PyCFunction)(void (*)(void))Vector_insert, METH_FASTCALL,
     "insert(i, tag, data) -> bool (False: full); moves in place (caller holds the lock)."},
    {"remove_at", (PyCFunction)Vector_remove_at, METH_O,
     "remove_at(i) -> (tag, bytes); moves in place (caller holds the lock)."},
    {"changes", (PyCFunction)Vector_changes, METH_NOARGS,
     "changes() -> how many writes the list has had."},
    {"recount", (PyCFunction)Vector_recount, METH_NOARGS, "recount(): repair after a death."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods Vector_as_sequence = {
    .sq_length = ps_vector_len,
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
