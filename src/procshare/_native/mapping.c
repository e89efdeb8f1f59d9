#include "mapping.h"

#include <math.h>
#include <stddef.h>
#include <sys/mman.h>

#include "park.h"
#include "platform.h"

char *ps_mapping_ptr(PyObject *obj, Py_ssize_t offset, Py_ssize_t size, Py_ssize_t align)
{
    if (!PyObject_TypeCheck(obj, &ps_MappingType)) {
        PyErr_SetString(PyExc_TypeError, "expected a procshare._core.Mapping");
        return NULL;
    }
    ps_Mapping *m = (ps_Mapping *)obj;
    if (m->base == NULL) {
        PyErr_SetString(PyExc_ValueError, "mapping is closed");
        return NULL;
    }
    if (offset < 0 || size < 0 || offset > m->size || size > m->size - offset) {
        PyErr_Format(PyExc_ValueError, "range [%zd, %zd + %zd) lies outside the %zd-byte segment",
                     offset, offset, size, m->size);
        return NULL;
    }
    if (align > 1 && offset % align != 0) {
        PyErr_Format(PyExc_ValueError, "offset %zd is not %zd-byte aligned", offset, align);
        return NULL;
    }
    return m->base + offset;
}

char *ps_body_ptr(PyObject *m, Py_ssize_t offset, uint64_t head, uint64_t body, Py_ssize_t place,
                  const char *what)
{
    if (place >= 0 && head + body > (uint64_t)place) {
        ps_damaged(what, "geometry (larger than its place)");
        return NULL;
    }
    return ps_mapping_ptr(m, offset + (Py_ssize_t)head, (Py_ssize_t)body, 8);
}

int ps_parse_place(PyObject *args, const char *what, PyObject **mapping, Py_ssize_t *offset,
                   Py_ssize_t *size)
{
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    if (n < 2 || n > 3) {
        PyErr_Format(PyExc_TypeError, "%s(mapping, offset[, size])", what);
        return -1;
    }
    *mapping = PyTuple_GET_ITEM(args, 0);
    *offset = PyNumber_AsSsize_t(PyTuple_GET_ITEM(args, 1), PyExc_OverflowError);
    if (*offset == -1 && PyErr_Occurred())
        return -1;
    if (n == 3) {
        *size = PyNumber_AsSsize_t(PyTuple_GET_ITEM(args, 2), PyExc_OverflowError);
        if (*size == -1 && PyErr_Occurred())
            return -1;
    }
    return 0;
}

PyObject *ps_python_attr(const char *module, const char *name, PyObject **cache)
{
    if (*cache == NULL) {
        PyObject *m = PyImport_ImportModule(module);
        if (m == NULL)
            return NULL;
        *cache = PyObject_GetAttrString(m, name);
        Py_DECREF(m);
    }
    return *cache;
}

PyObject *ps_damaged(const char *what, const char *why)
{
    static PyObject *corrupt_error;
    PyObject *cls = ps_python_attr("procshare._errors", "CorruptSegmentError", &corrupt_error);
    if (cls != NULL)
        PyErr_Format(cls, "the %s's memory is damaged (%s)", what, why);
    return NULL;
}

int ps_as_int(PyObject *obj)
{
    long v = PyLong_AsLong(obj);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < INT_MIN || v > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "value does not fit in a C int");
        return -1;
    }
    return (int)v;
}

PyObject *ps_view_new(PyTypeObject *type, PyObject *mapping)
{
    ps_View *self = (ps_View *)type->tp_alloc(type, 0);
    if (self != NULL)
        self->mapping = Py_NewRef(mapping);
    return (PyObject *)self;
}

void ps_view_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    Py_CLEAR(((ps_View *)self)->mapping);
    tp->tp_free(self);
}

int64_t ps_timeout_ns(PyObject *timeout)
{
    if (timeout == Py_None)
        return -1;
    double t = PyFloat_AsDouble(timeout);
    if (t == -1.0 && PyErr_Occurred())
        return -2;
    if (isnan(t) || t < 0) {
        PyErr_SetString(PyExc_ValueError, "timeout must be a non-negative number or None");
        return -2;
    }
    if (t > 9.0e9) /* about 285 years: treat as no limit */
        return -1;
    return (int64_t)(t * 1e9);
}

int ps_park_checked(_Atomic uint32_t *word, uint32_t expected, int64_t timeout_ns, int64_t spin_ns,
                    _Atomic uint32_t *sleepers)
{
    int64_t deadline = timeout_ns < 0 ? -1 : ps_now_ns() + timeout_ns;
    if (timeout_ns >= 0 && spin_ns > timeout_ns)
        spin_ns = timeout_ns;
    int changed;
    Py_BEGIN_ALLOW_THREADS
        changed = ps_spin(word, expected, spin_ns);
    Py_END_ALLOW_THREADS
    for (;;) {
        if (changed)
            return 1;
        int64_t slice = ps_slice_until(deadline, PS_SLICE_NS);
        if (slice == 0)
            return 0;
        ps_wait_result r;
        Py_BEGIN_ALLOW_THREADS
            r = ps_sleep(word, expected, slice, sleepers);
        Py_END_ALLOW_THREADS
        if (PyErr_CheckSignals() < 0)
            return -1;
        changed = r != PS_WAIT_TIMEOUT || atomic_load(word) != expected;
    }
}

static PyObject *Mapping_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"fd", "size", NULL};
    int fd;
    Py_ssize_t size;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "in:Mapping", kwlist, &fd, &size))
        return NULL;
    if (size <= 0) {
        PyErr_SetString(PyExc_ValueError, "mapping size must be positive");
        return NULL;
    }
    void *base = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED)
        return PyErr_SetFromErrno(PyExc_OSError);
    ps_Mapping *self = (ps_Mapping *)type->tp_alloc(type, 0);
    if (self == NULL) {
        munmap(base, (size_t)size);
        return NULL;
    }
    self->base = base;
    self->size = size;
    return (PyObject *)self;
}

static void Mapping_dealloc(ps_Mapping *self)
{
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    if (self->base != NULL)
        munmap(self->base, (size_t)self->size);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Mapping_getbuffer(ps_Mapping *self, Py_buffer *view, int flags)
{
    return PyBuffer_FillInfo(view, (PyObject *)self, self->base, self->size, 0, flags);
}

static PyBufferProcs Mapping_as_buffer = {
    .bf_getbuffer = (getbufferproc)Mapping_getbuffer,
};

/* wait(offset, expected, timeout=None, spin=None) -> bool: park on the 32-bit
 * word at offset while it equals expected, spinning up to spin seconds first
 * (None: the core's PS_SPIN_NS);
 * False when the timeout expired.  May return True spuriously. */
static PyObject *Mapping_wait(ps_Mapping *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 2 || nargs > 4) {
        PyErr_SetString(PyExc_TypeError, "wait(offset, expected, timeout=None, spin=None)");
        return NULL;
    }
    Py_ssize_t off = PyNumber_AsSsize_t(args[0], PyExc_OverflowError);
    if (off == -1 && PyErr_Occurred())
        return NULL;
    unsigned long expected = PyLong_AsUnsignedLong(args[1]);
    if (expected == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    if (expected > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "expected must fit in 32 bits");
        return NULL;
    }
    int64_t timeout = ps_timeout_ns(nargs >= 3 ? args[2] : Py_None);
    int64_t spin = nargs == 4 && args[3] != Py_None ? ps_timeout_ns(args[3]) : PS_SPIN_NS;
    if (timeout == -2 || spin == -2)
        return NULL;
    char *p = ps_mapping_ptr((PyObject *)self, off, 4, 4);
    if (p == NULL)
        return NULL;
    int r = ps_park_checked((_Atomic uint32_t *)p, (uint32_t)expected, timeout, spin, NULL);
    return r < 0 ? NULL : PyBool_FromLong(r);
}

/* wake(offset, n=-1) -> int: wake up to n sleepers on the word (all if n < 0). */
static PyObject *Mapping_wake(ps_Mapping *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "wake(offset, n=-1)");
        return NULL;
    }
    Py_ssize_t off = PyNumber_AsSsize_t(args[0], PyExc_OverflowError);
    if (off == -1 && PyErr_Occurred())
        return NULL;
    int n = -1;
    if (nargs == 2) {
        n = ps_as_int(args[1]);
        if (n == -1 && PyErr_Occurred())
            return NULL;
    }
    char *p = ps_mapping_ptr((PyObject *)self, off, 4, 4);
    if (p == NULL)
        return NULL;
    return PyLong_FromLong(ps_futex_wake((_Atomic uint32_t *)p, n));
}

/* back(offset, length): back the pages of [offset, offset + length) with memory
 * now, so that a full /dev/shm raises OSError here instead of SIGBUS at first use. */
static PyObject *Mapping_back(ps_Mapping *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "back(offset, length)");
        return NULL;
    }
    Py_ssize_t off = PyNumber_AsSsize_t(args[0], PyExc_OverflowError);
    if (off == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t len = PyNumber_AsSsize_t(args[1], PyExc_OverflowError);
    if (len == -1 && PyErr_Occurred())
        return NULL;
    if (len <= 0) {
        PyErr_SetString(PyExc_ValueError, "length must be positive");
        return NULL;
    }
    char *p = ps_mapping_ptr((PyObject *)self, off, len, 1);
    if (p == NULL)
        return NULL;
    int r;
    Py_BEGIN_ALLOW_THREADS
        r = ps_back_pages(p, (size_t)len);
    Py_END_ALLOW_THREADS
    if (r < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyMethodDef Mapping_methods[] = {
    {"back", (PyCFunction)(void (*)(void))Mapping_back, METH_FASTCALL,
     "back(offset, length): back those pages with memory now (OSError if it cannot)."},
    {"wait", (PyCFunction)(void (*)(void))Mapping_wait, METH_FASTCALL,
     "wait(offset, expected, timeout=None, spin=None) -> bool: park on a 32-bit word."},
    {"wake", (PyCFunction)(void (*)(void))Mapping_wake, METH_FASTCALL,
     "wake(offset, n=-1) -> int: futex wake on a 32-bit word."},
    {NULL, NULL, 0, NULL},
};

static PyObject *Mapping_get_size(ps_Mapping *self, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(self->size);
}

static PyGetSetDef Mapping_getset[] = {
    {"size", (getter)Mapping_get_size, NULL, "Size of the mapping in bytes.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject ps_MappingType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "procshare._core.Mapping",
    .tp_basicsize = sizeof(ps_Mapping),
    .tp_dealloc = (destructor)Mapping_dealloc,
    .tp_as_buffer = &Mapping_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Mapping(fd, size): a shared mapping of size bytes of fd.",
    .tp_weaklistoffset = offsetof(ps_Mapping, weakreflist),
    .tp_methods = Mapping_methods,
    .tp_getset = Mapping_getset,
    .tp_new = Mapping_new,
};

PyObject *ps_shm_open_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    const char *name;
    int create, mode;
    if (nargs != 3 || !PyUnicode_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "shm_open(name: str, create: bool, mode: int)");
        return NULL;
    }
    name = PyUnicode_AsUTF8(args[0]);
    if (name == NULL)
        return NULL;
    create = PyObject_IsTrue(args[1]);
    if (create < 0)
        return NULL;
    mode = ps_as_int(args[2]);
    if (mode == -1 && PyErr_Occurred())
        return NULL;
    int fd;
    Py_BEGIN_ALLOW_THREADS
        fd = ps_shm_open(name, create, (unsigned)mode);
    Py_END_ALLOW_THREADS
    if (fd < 0)
        return PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, args[0]);
    return PyLong_FromLong(fd);
}

PyObject *ps_shm_unlink_py(PyObject *module, PyObject *arg)
{
    (void)module;
    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "shm_unlink(name: str)");
        return NULL;
    }
    const char *name = PyUnicode_AsUTF8(arg);
    if (name == NULL)
        return NULL;
    if (ps_shm_unlink(name) < 0)
        return PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, arg);
    Py_RETURN_NONE;
}

/* Fill out[0..n) from positional args then keywords named names (out[i]
 * stays NULL when not given).  0, or -1 with TypeError. */
int ps_parse_args(const char *sig, const char *const *names, int n, PyObject *const *args,
                  Py_ssize_t nargs, PyObject *kwnames, PyObject **out)
{
    if (nargs > n) {
        PyErr_Format(PyExc_TypeError, "%s: too many arguments", sig);
        return -1;
    }
    for (int i = 0; i < n; i++)
        out[i] = i < nargs ? args[i] : NULL;
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, k);
        int i = 0;
        while (i < n && PyUnicode_CompareWithASCIIString(name, names[i]) != 0)
            i++;
        if (i == n || out[i] != NULL) {
            PyErr_Format(PyExc_TypeError, "%s: unexpected or repeated argument %R", sig, name);
            return -1;
        }
        out[i] = args[nargs + k];
    }
    return 0;
}
