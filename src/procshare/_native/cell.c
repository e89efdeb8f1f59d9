#include "cell.h"

#include <string.h>
#include <wchar.h>

#include "atomics.h"
#include "loaded.h"
#include "mapping.h"

/* ---- typecodes ---------------------------------------------------------- */

typedef enum { CAT_INT, CAT_FLOAT, CAT_CHAR, CAT_WCHAR, CAT_BOOL } ps_category;

typedef struct {
    char code;          /* ctypes / array typecode */
    const char *format; /* PEP 3118 format of one element */
    int width;          /* bytes */
    ps_category cat;
    int is_signed;
} ps_kind;

static const ps_kind KINDS[] = {
    {'b', "b", 1, CAT_INT, 1},
    {'B', "B", 1, CAT_INT, 0},
    {'h', "h", 2, CAT_INT, 1},
    {'H', "H", 2, CAT_INT, 0},
    {'i', "i", (int)sizeof(int), CAT_INT, 1},
    {'I', "I", (int)sizeof(int), CAT_INT, 0},
    {'l', "l", (int)sizeof(long), CAT_INT, 1},
    {'L', "L", (int)sizeof(long), CAT_INT, 0},
    {'q', "q", 8, CAT_INT, 1},
    {'Q', "Q", 8, CAT_INT, 0},
    {'f', "f", 4, CAT_FLOAT, 1},
    {'d', "d", 8, CAT_FLOAT, 1},
    {'c', "c", 1, CAT_CHAR, 0},
    {'u', "w", (int)sizeof(wchar_t), CAT_WCHAR, 0},
    {'?', "?", 1, CAT_BOOL, 0},
};

static const ps_kind *kind_of(PyObject *typecode)
{
    if (PyUnicode_Check(typecode) && PyUnicode_GET_LENGTH(typecode) == 1) {
        Py_UCS4 c = PyUnicode_READ_CHAR(typecode, 0);
        for (size_t i = 0; i < sizeof(KINDS) / sizeof(KINDS[0]); i++)
            if ((Py_UCS4)KINDS[i].code == c)
                return &KINDS[i];
    }
    PyErr_Format(PyExc_ValueError, "unknown typecode %R", typecode);
    return NULL;
}

Py_ssize_t ps_typecode_size(const char *typecode)
{
    for (size_t i = 0; i < sizeof(KINDS) / sizeof(KINDS[0]); i++)
        if (typecode[0] == KINDS[i].code && typecode[1] == '\0')
            return KINDS[i].width;
    PyErr_Format(PyExc_ValueError, "unknown typecode '%s'", typecode);
    return -1;
}

static uint64_t width_mask(int width)
{
    return width == 8 ? UINT64_MAX : (((uint64_t)1 << (8 * width)) - 1);
}

/* ---- conversions between Python objects and raw words ------------------- */

/* An integer as (negative?, magnitude-ish) split: fills *s when it fits in
 * long long, else *u when it fits in unsigned long long.  Returns 1 for s,
 * 2 for u, 0 when it fits neither (too large either way), -1 on error. */
static int int_parts(PyObject *v, long long *s, unsigned long long *u)
{
    if (PyLong_CheckExact(v)) { /* the common case, without a new reference */
        int ovf = 0;
        *s = PyLong_AsLongLongAndOverflow(v, &ovf);
        if (ovf == 0)
            return (*s == -1 && PyErr_Occurred()) ? -1 : 1;
    }
    PyObject *idx = PyNumber_Index(v);
    if (idx == NULL)
        return -1;
    int ovf = 0;
    int r;
    *s = PyLong_AsLongLongAndOverflow(idx, &ovf);
    if (*s == -1 && PyErr_Occurred())
        r = -1;
    else if (ovf == 0)
        r = 1;
    else if (ovf < 0)
        r = 0;
    else {
        *u = PyLong_AsUnsignedLongLong(idx);
        if (*u == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            r = 0;
        } else
            r = 2;
    }
    Py_DECREF(idx);
    return r;
}

/* Integer v as a raw word of k.  With wrap, any value from the signed minimum
 * to the unsigned maximum of the width is accepted and reduced modulo 2**bits
 * (operands of arithmetic); without, v must lie in the type's own range. */
static int int_to_raw(const ps_kind *k, PyObject *v, uint64_t *out, int wrap)
{
    long long s = 0;
    unsigned long long u = 0;
    int bits = 8 * k->width;
    int r = int_parts(v, &s, &u);
    if (r < 0)
        return -1;
    long long smin = bits == 64 ? INT64_MIN : -((long long)1 << (bits - 1));
    unsigned long long umax = width_mask(k->width);
    long long lo = (k->is_signed || wrap) ? smin : 0;
    unsigned long long hi = (k->is_signed && !wrap) ? umax >> 1 : umax;
    int ok;
    if (r == 1)
        ok = s >= lo && (s < 0 || (unsigned long long)s <= hi);
    else
        ok = r == 2 && u <= hi;
    if (!ok) {
        PyErr_Format(PyExc_OverflowError, "%R is out of range for typecode '%c'%s", v, k->code,
                     wrap ? " arithmetic" : "");
        return -1;
    }
    *out = (r == 1 ? (uint64_t)s : (uint64_t)u) & umax;
    return 0;
}

static double raw_to_double(const ps_kind *k, uint64_t raw)
{
    if (k->width == 4) {
        uint32_t w = (uint32_t)raw;
        float f;
        memcpy(&f, &w, 4);
        return (double)f;
    }
    double d;
    memcpy(&d, &raw, 8);
    return d;
}

static uint64_t double_to_raw(const ps_kind *k, double d)
{
    if (k->width == 4) {
        float f = (float)d; /* IEEE 754 (Annex F): out-of-range values become inf */
        uint32_t w;
        memcpy(&w, &f, 4);
        return w;
    }
    uint64_t raw;
    memcpy(&raw, &d, 8);
    return raw;
}

static int float_arg(PyObject *v, double *out)
{
    if (!PyFloat_Check(v) && !PyLong_Check(v) && !PyIndex_Check(v) &&
        Py_TYPE(v)->tp_as_number == NULL) {
        PyErr_Format(PyExc_TypeError, "a real number is required, not %.100s", Py_TYPE(v)->tp_name);
        return -1;
    }
    *out = PyFloat_AsDouble(v);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

/* The value to store for v, checked against k's range. */
static int to_raw(const ps_kind *k, PyObject *v, uint64_t *out)
{
    switch (k->cat) {
    case CAT_INT: return int_to_raw(k, v, out, 0);
    case CAT_FLOAT: {
        double d;
        if (float_arg(v, &d) < 0)
            return -1;
        *out = double_to_raw(k, d);
        return 0;
    }
    case CAT_CHAR:
        if (PyBytes_Check(v) && PyBytes_GET_SIZE(v) == 1) {
            *out = (unsigned char)PyBytes_AS_STRING(v)[0];
            return 0;
        }
        if (PyByteArray_Check(v) && PyByteArray_GET_SIZE(v) == 1) {
            *out = (unsigned char)PyByteArray_AS_STRING(v)[0];
            return 0;
        }
        if (PyLong_Check(v)) {
            long c = PyLong_AsLong(v);
            if (c >= 0 && c <= 255) {
                *out = (uint64_t)c;
                return 0;
            }
            PyErr_Clear();
            PyErr_Format(PyExc_OverflowError, "%R is out of range for typecode 'c' (0..255)", v);
            return -1;
        }
        PyErr_Format(PyExc_TypeError, "typecode 'c' needs a bytes object of length 1, not %R", v);
        return -1;
    case CAT_WCHAR:
        if (PyUnicode_Check(v) && PyUnicode_GET_LENGTH(v) == 1) {
            Py_UCS4 c = PyUnicode_READ_CHAR(v, 0);
            if ((uint64_t)c > width_mask(k->width)) {
                PyErr_Format(PyExc_OverflowError, "%R does not fit in a wchar_t", v);
                return -1;
            }
            *out = c;
            return 0;
        }
        PyErr_Format(PyExc_TypeError, "typecode 'u' needs a str of length 1, not %R", v);
        return -1;
    default: { /* CAT_BOOL: truth value, as ctypes.c_bool */
        int t = PyObject_IsTrue(v);
        if (t < 0)
            return -1;
        *out = (uint64_t)t;
        return 0;
    }
    }
}

/* The stored word of a signed integer kind, sign-extended from its width. */
static long long raw_to_signed(const ps_kind *k, uint64_t raw)
{
    switch (k->width) {
    case 1: return (int8_t)(uint8_t)raw;
    case 2: return (int16_t)(uint16_t)raw;
    case 4: return (int32_t)(uint32_t)raw;
    default: return (int64_t)raw;
    }
}

static PyObject *from_raw(const ps_kind *k, uint64_t raw)
{
    switch (k->cat) {
    case CAT_INT:
        if (!k->is_signed)
            return PyLong_FromUnsignedLongLong(raw);
        return PyLong_FromLongLong(raw_to_signed(k, raw));
    case CAT_FLOAT: return PyFloat_FromDouble(raw_to_double(k, raw));
    case CAT_CHAR: {
        char c = (char)raw;
        return PyBytes_FromStringAndSize(&c, 1);
    }
    case CAT_WCHAR:
        if (raw > 0x10FFFF) {
            PyErr_Format(PyExc_ValueError, "stored wchar_t %llu is not a code point",
                         (unsigned long long)raw);
            return NULL;
        }
        return PyUnicode_FromOrdinal((int)raw);
    default: return PyBool_FromLong(raw != 0);
    }
}

/* ---- the operations, shared by Cell and CellArray ----------------------- */

typedef enum {
    OP_LOAD,
    OP_STORE,
    OP_EXCHANGE,
    OP_CAS,
    OP_FETCH_ADD,
    OP_FETCH_SUB,
    OP_FETCH_AND,
    OP_FETCH_OR,
    OP_FETCH_XOR,
    OP_ADD,
    OP_SUB,
} cell_op;

static const char *const OP_NAMES[] = {
    "load",      "store",     "exchange",  "compare_exchange",
    "fetch_add", "fetch_sub", "fetch_and", "fetch_or",
    "fetch_xor", "add",       "sub",
};

/* Float add or subtract by a compare-exchange loop; returns the old raw word. */
static uint64_t float_fetch(char *p, const ps_kind *k, double d, int subtract, uint64_t *new_raw)
{
    uint64_t cur = ps_atomic_load(p, k->width);
    for (;;) {
        double v = raw_to_double(k, cur);
        uint64_t next = double_to_raw(k, subtract ? v - d : v + d);
        if (ps_atomic_cas(p, k->width, &cur, next)) {
            *new_raw = next;
            return cur;
        }
    }
}

/* Compare-exchange by value for floats (0.0 matches -0.0, NaN never matches),
 * by stored word for every other kind. */
static PyObject *cell_cas(char *p, const ps_kind *k, PyObject *expected, PyObject *desired)
{
    uint64_t want, next;
    if (to_raw(k, desired, &next) < 0)
        return NULL;
    if (k->cat == CAT_FLOAT) {
        double e;
        if (float_arg(expected, &e) < 0)
            return NULL;
        uint64_t cur = ps_atomic_load(p, k->width);
        for (;;) {
            if (raw_to_double(k, cur) != e)
                Py_RETURN_FALSE;
            if (ps_atomic_cas(p, k->width, &cur, next))
                Py_RETURN_TRUE;
        }
    }
    if (to_raw(k, expected, &want) < 0)
        return NULL;
    return PyBool_FromLong(ps_atomic_cas(p, k->width, &want, next));
}

/* A read-modify-write (fetch_* / add / sub): fills the word before and after.
 * Returns 0, or -1 with an exception. */
static int cell_rmw(char *p, const ps_kind *k, cell_op op, PyObject *a, uint64_t *prev,
                    uint64_t *next)
{
    int additive = op == OP_FETCH_ADD || op == OP_FETCH_SUB || op == OP_ADD || op == OP_SUB;
    int subtract = op == OP_FETCH_SUB || op == OP_SUB;
    if (k->cat == CAT_FLOAT && additive) {
        double d;
        if (float_arg(a, &d) < 0)
            return -1;
        *prev = float_fetch(p, k, d, subtract, next);
        return 0;
    }
    if (k->cat != CAT_INT) {
        PyErr_Format(PyExc_TypeError, "%s needs an integer%s typecode, not '%c'", OP_NAMES[op],
                     additive ? " or floating-point" : "", k->code);
        return -1;
    }
    uint64_t raw;
    if (int_to_raw(k, a, &raw, 1) < 0)
        return -1;
    ps_fetch_op fop = subtract             ? PS_OP_SUB
                      : op == OP_FETCH_AND ? PS_OP_AND
                      : op == OP_FETCH_OR  ? PS_OP_OR
                      : op == OP_FETCH_XOR ? PS_OP_XOR
                                           : PS_OP_ADD;
    *prev = ps_atomic_fetch(p, k->width, fop, raw);
    switch (fop) {
    case PS_OP_ADD: *next = *prev + raw; break;
    case PS_OP_SUB: *next = *prev - raw; break;
    case PS_OP_AND: *next = *prev & raw; break;
    case PS_OP_OR: *next = *prev | raw; break;
    default: *next = *prev ^ raw; break;
    }
    *next &= width_mask(k->width);
    return 0;
}

static PyObject *cell_apply(char *p, const ps_kind *k, cell_op op, PyObject *a, PyObject *b)
{
    uint64_t raw, prev, next;
    switch (op) {
    case OP_LOAD: return from_raw(k, ps_atomic_load(p, k->width));
    case OP_STORE:
        if (to_raw(k, a, &raw) < 0)
            return NULL;
        ps_atomic_store(p, k->width, raw);
        Py_RETURN_NONE;
    case OP_EXCHANGE:
        if (to_raw(k, a, &raw) < 0)
            return NULL;
        return from_raw(k, ps_atomic_exchange(p, k->width, raw));
    case OP_CAS: return cell_cas(p, k, a, b);
    default:
        if (cell_rmw(p, k, op, a, &prev, &next) < 0)
            return NULL;
        return from_raw(k, op == OP_ADD || op == OP_SUB ? next : prev);
    }
}

static int check_nargs(const char *name, Py_ssize_t got, Py_ssize_t want)
{
    if (got == want)
        return 1;
    PyErr_Format(PyExc_TypeError, "%s() takes %zd argument%s (%zd given)", name, want,
                 want == 1 ? "" : "s", got);
    return 0;
}

/* ---- Cell --------------------------------------------------------------- */

typedef struct {
    PS_VIEW_HEAD
    char *ptr;
    const ps_kind *kind;
    uint64_t source;   /* the serial that `.value` marks the numbers it returns with */
    PyObject *last;    /* the number `.value` last returned (immutable: returned again while */
    uint64_t last_raw; /* the word still holds last_raw, with no allocation) */
} ps_Cell;

static void Cell_dealloc(PyObject *self)
{
    Py_CLEAR(((ps_Cell *)self)->last);
    ps_view_dealloc(self);
}

static PyObject *Cell_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)kwds;
    PyObject *mapping, *typecode;
    Py_ssize_t offset;
    if (!PyArg_ParseTuple(args, "OnU:Cell", &mapping, &offset, &typecode))
        return NULL;
    const ps_kind *k = kind_of(typecode);
    if (k == NULL)
        return NULL;
    char *p = ps_mapping_ptr(mapping, offset, k->width, k->width);
    if (p == NULL)
        return NULL;
    ps_Cell *self = (ps_Cell *)ps_view_new(type, mapping);
    if (self == NULL)
        return NULL;
    self->ptr = p;
    self->kind = k;
    self->source = ps_new_source();
    return (PyObject *)self;
}

#define CELL_METHOD(name, op, n)                                                         \
    static PyObject *Cell_##name(ps_Cell *self, PyObject *const *args, Py_ssize_t nargs) \
    {                                                                                    \
        if (!check_nargs(#name, nargs, n))                                               \
            return NULL;                                                                 \
        return cell_apply(self->ptr, self->kind, op, n > 0 ? args[0] : NULL,             \
                          n > 1 ? args[1] : NULL);                                       \
    }

CELL_METHOD(load, OP_LOAD, 0)
CELL_METHOD(store, OP_STORE, 1)
CELL_METHOD(exchange, OP_EXCHANGE, 1)
CELL_METHOD(compare_exchange, OP_CAS, 2)
CELL_METHOD(fetch_add, OP_FETCH_ADD, 1)
CELL_METHOD(fetch_sub, OP_FETCH_SUB, 1)
CELL_METHOD(fetch_and, OP_FETCH_AND, 1)
CELL_METHOD(fetch_or, OP_FETCH_OR, 1)
CELL_METHOD(fetch_xor, OP_FETCH_XOR, 1)
CELL_METHOD(add, OP_ADD, 1)
CELL_METHOD(sub, OP_SUB, 1)

#define METHOD_ENTRY(type, name, doc) \
    {#name, (PyCFunction)(void (*)(void))type##_##name, METH_FASTCALL, doc}

static PyMethodDef Cell_methods[] = {
    METHOD_ENTRY(Cell, load, "load() -> value: atomic read."),
    METHOD_ENTRY(Cell, store, "store(value): atomic write."),
    METHOD_ENTRY(Cell, exchange, "exchange(value) -> previous value."),
    METHOD_ENTRY(Cell, compare_exchange,
                 "compare_exchange(expected, desired) -> bool: store desired if the value "
                 "equals expected, in one step."),
    METHOD_ENTRY(Cell, fetch_add, "fetch_add(n) -> previous value (wraps on overflow)."),
    METHOD_ENTRY(Cell, fetch_sub, "fetch_sub(n) -> previous value (wraps on overflow)."),
    METHOD_ENTRY(Cell, fetch_and, "fetch_and(mask) -> previous value."),
    METHOD_ENTRY(Cell, fetch_or, "fetch_or(mask) -> previous value."),
    METHOD_ENTRY(Cell, fetch_xor, "fetch_xor(mask) -> previous value."),
    METHOD_ENTRY(Cell, add, "add(n) -> new value (wraps on overflow)."),
    METHOD_ENTRY(Cell, sub, "sub(n) -> new value (wraps on overflow)."),
    {NULL, NULL, 0, NULL},
};

/* `.value`: numbers come back loaded, marked with this cell's source (the same
 * object again while the value is unchanged). */
static PyObject *Cell_get_value(ps_Cell *self, void *closure)
{
    (void)closure;
    const ps_kind *k = self->kind;
    uint64_t raw = ps_atomic_load(self->ptr, k->width);
    if (self->last != NULL && self->last_raw == raw)
        return Py_NewRef(self->last);
    PyObject *v;
    if (k->cat == CAT_FLOAT)
        v = ps_loaded_double(raw_to_double(k, raw), self->source);
    else if (k->cat != CAT_INT)
        return from_raw(k, raw);
    else if (!k->is_signed)
        v = ps_loaded_ulong(raw, self->source);
    else
        v = ps_loaded_long(raw_to_signed(k, raw), self->source);
    if (v != NULL) {
        Py_XSETREF(self->last, Py_NewRef(v));
        self->last_raw = raw;
    }
    return v;
}

static int Cell_set_value(ps_Cell *self, PyObject *v, void *closure)
{
    (void)closure;
    if (v == NULL) {
        PyErr_SetString(PyExc_TypeError, "cannot delete the value");
        return -1;
    }
    PyObject *addend = ps_pending_addend(v, self->source);
    if (addend != NULL) { /* v is loaded + n from this cell: add n in one step */
        uint64_t prev, next;
        return cell_rmw(self->ptr, self->kind, OP_FETCH_ADD, addend, &prev, &next);
    }
    PyObject *r = cell_apply(self->ptr, self->kind, OP_STORE, v, NULL);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

static PyObject *Cell_get_typecode(ps_Cell *self, void *closure)
{
    (void)closure;
    return PyUnicode_FromOrdinal(self->kind->code);
}

static PyGetSetDef Cell_getset[] = {
    {"value", (getter)Cell_get_value, (setter)Cell_set_value, "The value (atomic load/store).",
     NULL},
    {"typecode", (getter)Cell_get_typecode, NULL, "The element typecode.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyObject *Cell_inplace(PyObject *self, PyObject *other, cell_op op)
{
    ps_Cell *c = (ps_Cell *)self;
    if (c->kind->cat != CAT_INT && c->kind->cat != CAT_FLOAT) {
        PyErr_Format(PyExc_TypeError, "%s= needs an integer or floating-point typecode, not '%c'",
                     op == OP_FETCH_ADD ? "+" : "-", c->kind->code);
        return NULL;
    }
    uint64_t prev, next;
    if (cell_rmw(c->ptr, c->kind, op, other, &prev, &next) < 0)
        return NULL;
    Py_INCREF(self);
    return self;
}

static PyObject *Cell_iadd(PyObject *self, PyObject *other)
{
    if (!PyObject_TypeCheck(self, &ps_CellType))
        Py_RETURN_NOTIMPLEMENTED;
    return Cell_inplace(self, other, OP_FETCH_ADD);
}

static PyObject *Cell_isub(PyObject *self, PyObject *other)
{
    if (!PyObject_TypeCheck(self, &ps_CellType))
        Py_RETURN_NOTIMPLEMENTED;
    return Cell_inplace(self, other, OP_FETCH_SUB);
}

static PyObject *Cell_load_plain(PyObject *self)
{
    ps_Cell *c = (ps_Cell *)self;
    return cell_apply(c->ptr, c->kind, OP_LOAD, NULL, NULL);
}

static PyObject *Cell_int(PyObject *self)
{
    PyObject *v = Cell_load_plain(self);
    if (v == NULL)
        return NULL;
    PyObject *r = PyNumber_Long(v);
    Py_DECREF(v);
    return r;
}

static PyObject *Cell_float(PyObject *self)
{
    PyObject *v = Cell_load_plain(self);
    if (v == NULL)
        return NULL;
    PyObject *r = PyNumber_Float(v);
    Py_DECREF(v);
    return r;
}

static PyObject *Cell_index(PyObject *self)
{
    ps_Cell *c = (ps_Cell *)self;
    if (c->kind->cat != CAT_INT && c->kind->cat != CAT_BOOL) {
        PyErr_Format(PyExc_TypeError, "typecode '%c' cannot be used as an integer", c->kind->code);
        return NULL;
    }
    return Cell_int(self);
}

static PyNumberMethods Cell_as_number = {
    .nb_inplace_add = Cell_iadd,
    .nb_inplace_subtract = Cell_isub,
    .nb_int = Cell_int,
    .nb_float = Cell_float,
    .nb_index = Cell_index,
};

PyTypeObject ps_CellType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "procshare._core.Cell",
    .tp_basicsize = sizeof(ps_Cell),
    .tp_dealloc = Cell_dealloc,
    .tp_as_number = &Cell_as_number,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Cell(mapping, offset, typecode): one atomic scalar inside a mapping.",
    .tp_methods = Cell_methods,
    .tp_getset = Cell_getset,
    .tp_new = Cell_new,
};

/* ---- CellArray ---------------------------------------------------------- */

typedef struct {
    PS_VIEW_HEAD
    char *ptr;
    const ps_kind *kind;
    Py_ssize_t length;
} ps_CellArray;

static PyObject *CellArray_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)kwds;
    PyObject *mapping, *typecode;
    Py_ssize_t offset, length;
    if (!PyArg_ParseTuple(args, "OnUn:CellArray", &mapping, &offset, &typecode, &length))
        return NULL;
    const ps_kind *k = kind_of(typecode);
    if (k == NULL)
        return NULL;
    if (length < 0 || length > PY_SSIZE_T_MAX / k->width) {
        PyErr_Format(PyExc_ValueError, "invalid array length %zd", length);
        return NULL;
    }
    char *p = ps_mapping_ptr(mapping, offset, length * k->width, k->width);
    if (p == NULL)
        return NULL;
    ps_CellArray *self = (ps_CellArray *)ps_view_new(type, mapping);
    if (self == NULL)
        return NULL;
    self->ptr = p;
    self->kind = k;
    self->length = length;
    return (PyObject *)self;
}

/* Pointer to element index (negative counts from the end) or NULL + IndexError. */
static char *element(ps_CellArray *self, PyObject *index)
{
    Py_ssize_t i = PyNumber_AsSsize_t(index, PyExc_IndexError);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    if (i < 0)
        i += self->length;
    if (i < 0 || i >= self->length) {
        PyErr_SetString(PyExc_IndexError, "array index out of range");
        return NULL;
    }
    return self->ptr + i * self->kind->width;
}

#define ARRAY_METHOD(name, op, n)                                                                  \
    static PyObject *CellArray_##name(ps_CellArray *self, PyObject *const *args, Py_ssize_t nargs) \
    {                                                                                              \
        if (!check_nargs(#name, nargs, n + 1))                                                     \
            return NULL;                                                                           \
        char *p = element(self, args[0]);                                                          \
        if (p == NULL)                                                                             \
            return NULL;                                                                           \
        return cell_apply(p, self->kind, op, n > 0 ? args[1] : NULL, n > 1 ? args[2] : NULL);      \
    }

ARRAY_METHOD(load, OP_LOAD, 0)
ARRAY_METHOD(store, OP_STORE, 1)
ARRAY_METHOD(exchange, OP_EXCHANGE, 1)
ARRAY_METHOD(compare_exchange, OP_CAS, 2)
ARRAY_METHOD(fetch_add, OP_FETCH_ADD, 1)
ARRAY_METHOD(fetch_sub, OP_FETCH_SUB, 1)
ARRAY_METHOD(fetch_and, OP_FETCH_AND, 1)
ARRAY_METHOD(fetch_or, OP_FETCH_OR, 1)
ARRAY_METHOD(fetch_xor, OP_FETCH_XOR, 1)
ARRAY_METHOD(add, OP_ADD, 1)
ARRAY_METHOD(sub, OP_SUB, 1)

/* find(value, start=0) -> int: the first index >= start holding value, or -1. */
static PyObject *CellArray_find(ps_CellArray *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "find(value, start=0, stop=len)");
        return NULL;
    }
    uint64_t want;
    if (to_raw(self->kind, args[0], &want) < 0)
        return NULL;
    Py_ssize_t start = 0, stop = self->length;
    if (nargs >= 2 && (start = PyNumber_AsSsize_t(args[1], PyExc_IndexError)) == -1 &&
        PyErr_Occurred())
        return NULL;
    if (nargs == 3 && (stop = PyNumber_AsSsize_t(args[2], PyExc_IndexError)) == -1 &&
        PyErr_Occurred())
        return NULL;
    if (start < 0)
        start = 0;
    if (stop > self->length)
        stop = self->length;
    int w = self->kind->width;
    for (Py_ssize_t i = start; i < stop; i++)
        if (ps_atomic_load(self->ptr + i * w, w) == want)
            return PyLong_FromSsize_t(i);
    return PyLong_FromLong(-1);
}

static PyMethodDef CellArray_methods[] = {
    {"find", (PyCFunction)(void (*)(void))CellArray_find, METH_FASTCALL,
     "find(value, start=0, stop=len) -> int: first index in [start, stop) whose element is "
     "value, else -1."},
    METHOD_ENTRY(CellArray, load, "load(i) -> value: atomic read of element i."),
    METHOD_ENTRY(CellArray, store, "store(i, value): atomic write of element i."),
    METHOD_ENTRY(CellArray, exchange, "exchange(i, value) -> previous value."),
    METHOD_ENTRY(CellArray, compare_exchange,
                 "compare_exchange(i, expected, desired) -> bool, in one step."),
    METHOD_ENTRY(CellArray, fetch_add, "fetch_add(i, n) -> previous value (wraps)."),
    METHOD_ENTRY(CellArray, fetch_sub, "fetch_sub(i, n) -> previous value (wraps)."),
    METHOD_ENTRY(CellArray, fetch_and, "fetch_and(i, mask) -> previous value."),
    METHOD_ENTRY(CellArray, fetch_or, "fetch_or(i, mask) -> previous value."),
    METHOD_ENTRY(CellArray, fetch_xor, "fetch_xor(i, mask) -> previous value."),
    METHOD_ENTRY(CellArray, add, "add(i, n) -> new value (wraps)."),
    METHOD_ENTRY(CellArray, sub, "sub(i, n) -> new value (wraps)."),
    {NULL, NULL, 0, NULL},
};

static Py_ssize_t CellArray_len(ps_CellArray *self)
{
    return self->length;
}

static PyObject *CellArray_item(ps_CellArray *self, Py_ssize_t i)
{
    if (i < 0 || i >= self->length) {
        PyErr_SetString(PyExc_IndexError, "array index out of range");
        return NULL;
    }
    return cell_apply(self->ptr + i * self->kind->width, self->kind, OP_LOAD, NULL, NULL);
}

static PyObject *CellArray_subscript(ps_CellArray *self, PyObject *key)
{
    if (!PySlice_Check(key)) {
        char *p = element(self, key);
        return p == NULL ? NULL : cell_apply(p, self->kind, OP_LOAD, NULL, NULL);
    }
    Py_ssize_t start, stop, step;
    if (PySlice_Unpack(key, &start, &stop, &step) < 0)
        return NULL;
    Py_ssize_t n = PySlice_AdjustIndices(self->length, &start, &stop, step);
    int w = self->kind->width;
    if (self->kind->cat == CAT_CHAR || self->kind->cat == CAT_WCHAR) {
        /* ctypes returns bytes for c_char arrays and str for c_wchar arrays */
        int is_char = self->kind->cat == CAT_CHAR;
        Py_UCS4 *text = is_char ? NULL : PyMem_Malloc((size_t)(n > 0 ? n : 1) * sizeof(Py_UCS4));
        PyObject *r = is_char ? PyBytes_FromStringAndSize(NULL, n) : NULL;
        if (is_char ? r == NULL : text == NULL)
            return is_char ? NULL : PyErr_NoMemory();
        for (Py_ssize_t j = 0; j < n; j++) {
            uint64_t raw = ps_atomic_load(self->ptr + (start + j * step) * w, w);
            if (is_char)
                PyBytes_AS_STRING(r)[j] = (char)raw;
            else if (raw > 0x10FFFF) {
                PyMem_Free(text);
                PyErr_SetString(PyExc_ValueError, "stored wchar_t is not a code point");
                return NULL;
            } else
                text[j] = (Py_UCS4)raw;
        }
        if (!is_char) {
            r = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, text, n);
            PyMem_Free(text);
        }
        return r;
    }
    PyObject *r = PyList_New(n);
    if (r == NULL)
        return NULL;
    for (Py_ssize_t j = 0; j < n; j++) {
        PyObject *v =
            cell_apply(self->ptr + (start + j * step) * w, self->kind, OP_LOAD, NULL, NULL);
        if (v == NULL) {
            Py_DECREF(r);
            return NULL;
        }
        PyList_SET_ITEM(r, j, v);
    }
    return r;
}

static int CellArray_ass_slice(ps_CellArray *self, PyObject *key, PyObject *value)
{
    Py_ssize_t start, stop, step;
    if (PySlice_Unpack(key, &start, &stop, &step) < 0)
        return -1;
    Py_ssize_t n = PySlice_AdjustIndices(self->length, &start, &stop, step);
    PyObject *seq = PySequence_Fast(value, "can only assign an iterable to a slice");
    if (seq == NULL)
        return -1;
    if (PySequence_Fast_GET_SIZE(seq) != n) {
        PyErr_Format(PyExc_ValueError, "can only assign a sequence of the same size (%zd, not %zd)",
                     n, PySequence_Fast_GET_SIZE(seq));
        Py_DECREF(seq);
        return -1;
    }
    /* Convert everything first, so that bad input changes nothing. */
    uint64_t *raws = PyMem_Malloc((size_t)(n > 0 ? n : 1) * sizeof(uint64_t));
    if (raws == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    int rc = 0;
    for (Py_ssize_t j = 0; j < n && rc == 0; j++)
        rc = to_raw(self->kind, PySequence_Fast_GET_ITEM(seq, j), &raws[j]);
    if (rc == 0) {
        int w = self->kind->width;
        for (Py_ssize_t j = 0; j < n; j++)
            ps_atomic_store(self->ptr + (start + j * step) * w, w, raws[j]);
    }
    PyMem_Free(raws);
    Py_DECREF(seq);
    return rc;
}

static int CellArray_ass_subscript(ps_CellArray *self, PyObject *key, PyObject *value)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_TypeError, "shared arrays have a fixed size: cannot delete items");
        return -1;
    }
    if (PySlice_Check(key))
        return CellArray_ass_slice(self, key, value);
    char *p = element(self, key);
    if (p == NULL)
        return -1;
    PyObject *r = cell_apply(p, self->kind, OP_STORE, value, NULL);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

static int CellArray_getbuffer(ps_CellArray *self, Py_buffer *view, int flags)
{
    view->buf = self->ptr;
    view->obj = Py_NewRef((PyObject *)self);
    view->len = self->length * self->kind->width;
    view->readonly = 0;
    view->itemsize = self->kind->width;
    view->format = (flags & PyBUF_FORMAT) ? (char *)self->kind->format : NULL;
    view->ndim = 1;
    view->shape = (flags & PyBUF_ND) ? &self->length : NULL;
    view->strides = (flags & PyBUF_STRIDES) ? &view->itemsize : NULL;
    view->suboffsets = NULL;
    view->internal = NULL;
    return 0;
}

static PyObject *CellArray_get_typecode(ps_CellArray *self, void *closure)
{
    (void)closure;
    return PyUnicode_FromOrdinal(self->kind->code);
}

static PyGetSetDef CellArray_getset[] = {
    {"typecode", (getter)CellArray_get_typecode, NULL, "The element typecode.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods CellArray_as_sequence = {
    .sq_length = (lenfunc)CellArray_len,
    .sq_item = (ssizeargfunc)CellArray_item,
};

static PyMappingMethods CellArray_as_mapping = {
    .mp_length = (lenfunc)CellArray_len,
    .mp_subscript = (binaryfunc)CellArray_subscript,
    .mp_ass_subscript = (objobjargproc)CellArray_ass_subscript,
};

static PyBufferProcs CellArray_as_buffer = {
    .bf_getbuffer = (getbufferproc)CellArray_getbuffer,
};

PyTypeObject ps_CellArrayType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "procshare._core.CellArray",
    .tp_basicsize = sizeof(ps_CellArray),
    .tp_dealloc = ps_view_dealloc,
    .tp_as_sequence = &CellArray_as_sequence,
    .tp_as_mapping = &CellArray_as_mapping,
    .tp_as_buffer = &CellArray_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "CellArray(mapping, offset, typecode, length): atomic elements inside a mapping.",
    .tp_methods = CellArray_methods,
    .tp_getset = CellArray_getset,
    .tp_new = CellArray_new,
};
