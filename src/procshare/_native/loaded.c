#include "loaded.h"

#include <stddef.h>
#include <string.h>

/* What a loaded number carries besides its value. */
typedef struct {
    uint64_t source;  /* the serial of the object it was read from */
    PyObject *addend; /* NULL: as read; else a plain int or float, the pending change */
} ps_marks;

/* ---- LoadedInt: an int with the marks after room for any 64-bit value ---- */

/* An int's digits start at a fixed offset and a LoadedInt always has room for
 * the digits of a 64-bit magnitude (so also of a sum just past 64 bits), so its marks sit at a
 * fixed offset after them.  The sign and digit count are written as the interpreter's headers lay
 * them out: the sign in ob_size up to 3.11, in lv_tag's low bits from 3.12. */
#if PY_VERSION_HEX >= 0x030C0000
#define DIGITS_OFFSET offsetof(PyLongObject, long_value.ob_digit)
#else
#define DIGITS_OFFSET offsetof(PyLongObject, ob_digit)
#endif
#define MAX_DIGITS ((64 + PyLong_SHIFT - 1) / PyLong_SHIFT)
#define ALIGN_UP(n, a) (((n) + (a) - 1) / (a) * (a))
#define INT_MARKS_OFFSET ALIGN_UP(DIGITS_OFFSET + MAX_DIGITS * sizeof(digit), _Alignof(ps_marks))

static ps_marks *int_marks(PyObject *o)
{
    return (ps_marks *)((char *)o + INT_MARKS_OFFSET);
}

typedef struct {
    PyFloatObject number;
    ps_marks marks;
} ps_LoadedFloat;

static ps_marks *marks_of(PyObject *o)
{
    if (Py_IS_TYPE(o, &ps_LoadedIntType))
        return int_marks(o);
    if (Py_IS_TYPE(o, &ps_LoadedFloatType))
        return &((ps_LoadedFloat *)o)->marks;
    return NULL;
}

uint64_t ps_new_source(void)
{
    static uint64_t last; /* under the GIL */
    return ++last;
}

/* A LoadedInt with marks source and addend (taken) whose digits are still to
 * be written. */
static PyObject *alloc_int(uint64_t source, PyObject *addend)
{
    PyObject *o = PyObject_Malloc((size_t)ps_LoadedIntType.tp_basicsize);
    if (o == NULL) {
        Py_XDECREF(addend);
        return PyErr_NoMemory();
    }
    PyObject_Init(o, &ps_LoadedIntType);
    ((digit *)((char *)o + DIGITS_OFFSET))[0] = 0;
    *int_marks(o) = (ps_marks){source, addend};
    return o;
}

static void set_sign_and_count(PyObject *o, int negative, Py_ssize_t n)
{
#if PY_VERSION_HEX >= 0x030C0000
    uintptr_t sign = n == 0 ? 1 : negative ? 2 : 0; /* zero, negative, positive */
    ((PyLongObject *)o)->long_value.lv_tag = ((uintptr_t)n << 3) | sign;
#else
    Py_SET_SIZE((PyVarObject *)o, negative ? -n : n);
#endif
}

/* A LoadedInt of value (negative ? -magnitude : magnitude). */
static PyObject *new_int(int negative, unsigned long long magnitude, uint64_t source)
{
    PyObject *o = alloc_int(source, NULL);
    if (o == NULL)
        return NULL;
    digit *d = (digit *)((char *)o + DIGITS_OFFSET);
    Py_ssize_t n = 0;
    for (; magnitude != 0; magnitude >>= PyLong_SHIFT)
        d[n++] = (digit)(magnitude & PyLong_MASK);
    set_sign_and_count(o, negative, n);
    return o;
}

/* A LoadedInt equal to the int x when its digits fit (NULL without an
 * exception when they do not); takes addend either way. */
static PyObject *copy_int(PyObject *x, uint64_t source, PyObject *addend)
{
#if PY_VERSION_HEX >= 0x030C0000
    uintptr_t tag = ((PyLongObject *)x)->long_value.lv_tag;
    Py_ssize_t n = (Py_ssize_t)(tag >> 3);
    int negative = (tag & 3) == 2;
    const digit *from = ((PyLongObject *)x)->long_value.ob_digit;
#else
    Py_ssize_t n = Py_ABS(Py_SIZE(x));
    int negative = Py_SIZE(x) < 0;
    const digit *from = ((PyLongObject *)x)->ob_digit;
#endif
    if (n > MAX_DIGITS) {
        Py_XDECREF(addend);
        return NULL;
    }
    PyObject *o = alloc_int(source, addend);
    if (o == NULL)
        return NULL;
    memcpy((char *)o + DIGITS_OFFSET, from, (size_t)n * sizeof(digit));
    set_sign_and_count(o, negative, n);
    return o;
}

static PyObject *new_float(double v, uint64_t source, PyObject *addend)
{
    ps_LoadedFloat *o = PyObject_Malloc(sizeof(ps_LoadedFloat));
    if (o == NULL) {
        Py_XDECREF(addend);
        return PyErr_NoMemory();
    }
    PyObject_Init((PyObject *)o, &ps_LoadedFloatType);
    o->number.ob_fval = v;
    o->marks = (ps_marks){source, addend};
    return (PyObject *)o;
}

PyObject *ps_loaded_long(long long v, uint64_t source)
{
    unsigned long long magnitude = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    return new_int(v < 0, magnitude, source);
}

PyObject *ps_loaded_ulong(unsigned long long v, uint64_t source)
{
    return new_int(0, v, source);
}

PyObject *ps_loaded_double(double v, uint64_t source)
{
    return new_float(v, source, NULL);
}

/* x marked with source and addend (taken), or x itself when it is neither an
 * int of at most MAX_DIGITS digits nor a float. */
static PyObject *mark(PyObject *x, uint64_t source, PyObject *addend)
{
    if (PyLong_Check(x) && !PyBool_Check(x)) {
        PyObject *o = copy_int(x, source, addend);
        return o != NULL ? o : Py_NewRef(x);
    }
    if (PyFloat_Check(x))
        return new_float(PyFloat_AS_DOUBLE(x), source, addend);
    Py_XDECREF(addend);
    return Py_NewRef(x);
}

PyObject *ps_loaded(PyObject *x, uint64_t source)
{
    return mark(x, source, NULL);
}

PyObject *ps_pending_addend(PyObject *x, uint64_t source)
{
    ps_marks *m = marks_of(x);
    return m != NULL && m->source == source ? m->addend : NULL;
}

/* ---- arithmetic: + and - give pending changes, everything else plain ------ */

/* o as a plain int or float (a new reference). */
static PyObject *plain(PyObject *o)
{
    if (Py_IS_TYPE(o, &ps_LoadedIntType))
        return PyNumber_Long(o);
    if (Py_IS_TYPE(o, &ps_LoadedFloatType))
        return PyFloat_FromDouble(PyFloat_AS_DOUBLE(o));
    return Py_NewRef(o);
}

/* r, the plain result of a + b or a - b, marked as a pending change when a
 * (or, for a sum, b) is loaded: its addend is the other operand, added to the
 * loaded operand's own pending addend if it has one. */
static PyObject *pending(PyObject *a, PyObject *b, PyObject *r, int subtract)
{
    if (r == NULL || r == Py_NotImplemented)
        return r;
    ps_marks *m = marks_of(a);
    PyObject *other = b;
    if (m == NULL && !subtract) {
        m = marks_of(b);
        other = a;
    }
    if (m == NULL)
        return r;
    PyObject *o = plain(other);
    PyObject *addend = NULL;
    if (o != NULL) {
        if (m->addend != NULL)
            addend = subtract ? PyNumber_Subtract(m->addend, o) : PyNumber_Add(m->addend, o);
        else
            addend = subtract ? PyNumber_Negative(o) : Py_NewRef(o);
        Py_DECREF(o);
    }
    PyObject *x = addend == NULL ? NULL : mark(r, m->source, addend);
    Py_DECREF(r);
    return x;
}

static PyObject *int_add(PyObject *a, PyObject *b)
{
    return pending(a, b, PyLong_Type.tp_as_number->nb_add(a, b), 0);
}

static PyObject *int_subtract(PyObject *a, PyObject *b)
{
    return pending(a, b, PyLong_Type.tp_as_number->nb_subtract(a, b), 1);
}

static PyObject *float_add(PyObject *a, PyObject *b)
{
    return pending(a, b, PyFloat_Type.tp_as_number->nb_add(a, b), 0);
}

static PyObject *float_subtract(PyObject *a, PyObject *b)
{
    return pending(a, b, PyFloat_Type.tp_as_number->nb_subtract(a, b), 1);
}

static PyObject *loaded_reduce(PyObject *self, PyObject *unused)
{
    (void)unused;
    PyObject *p = plain(self);
    if (p == NULL)
        return NULL;
    return Py_BuildValue("O(N)", (PyObject *)Py_TYPE(p), p);
}

static void loaded_dealloc(PyObject *self)
{
    Py_XDECREF(marks_of(self)->addend);
    Py_TYPE(self)->tp_free(self);
}

static PyMethodDef loaded_methods[] = {
    {"__reduce__", loaded_reduce, METH_NOARGS, "Pickles and copies as the plain number."},
    {NULL, NULL, 0, NULL},
};

static PyNumberMethods int_number = {.nb_add = int_add, .nb_subtract = int_subtract};
static PyNumberMethods float_number = {.nb_add = float_add, .nb_subtract = float_subtract};

#define LOADED_FLAGS (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION)

PyTypeObject ps_LoadedIntType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "procshare._core.LoadedInt",
    .tp_basicsize = (Py_ssize_t)(INT_MARKS_OFFSET + sizeof(ps_marks)),
    .tp_dealloc = loaded_dealloc,
    .tp_as_number = &int_number,
    .tp_flags = LOADED_FLAGS,
    .tp_doc = "An int read from a shared value's .value: the same number, and `v.value += n` "
              "with it is one atomic add.",
    .tp_methods = loaded_methods,
    .tp_base = &PyLong_Type,
    .tp_free = PyObject_Free,
};

PyTypeObject ps_LoadedFloatType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "procshare._core.LoadedFloat",
    .tp_basicsize = sizeof(ps_LoadedFloat),
    .tp_dealloc = loaded_dealloc,
    .tp_as_number = &float_number,
    .tp_flags = LOADED_FLAGS,
    .tp_doc = "A float read from a shared value's .value: the same number, and `v.value += x` "
              "with it is one atomic add.",
    .tp_methods = loaded_methods,
    .tp_base = &PyFloat_Type,
    .tp_free = PyObject_Free,
};

/* ---- Python-level access, for values kept by Python code ------------------ */

/* (x, source) from a call's two positional arguments. */
static int source_args(const char *name, PyObject *const *args, Py_ssize_t nargs, uint64_t *out)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "%s() takes 2 arguments (%zd given)", name, nargs);
        return -1;
    }
    unsigned long long s = PyLong_AsUnsignedLongLong(args[1]);
    if (s == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    *out = s;
    return 0;
}

PyObject *ps_new_source_py(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return PyLong_FromUnsignedLongLong(ps_new_source());
}

PyObject *ps_loaded_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    uint64_t source;
    if (source_args("loaded", args, nargs, &source) < 0)
        return NULL;
    return ps_loaded(args[0], source);
}

PyObject *ps_pending_addend_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    uint64_t source;
    if (source_args("pending_addend", args, nargs, &source) < 0)
        return NULL;
    PyObject *addend = ps_pending_addend(args[0], source);
    return Py_NewRef(addend != NULL ? addend : Py_None);
}
