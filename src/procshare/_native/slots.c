#include "slots.h"

#include <stdatomic.h>
#include <stddef.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

#include "codec.h"
#include "mapping.h"

typedef struct {
    PS_VIEW_HEAD
    Py_ssize_t first, slot, slots, flags_at;
    PyObject *free; /* the list released slots go to, as (self, index) */
    PyObject *name; /* the arena's name (str), which its objects' names start with */
    unsigned mode;  /* the arena's mode, its objects' */
} ps_Slots;

/* The name of the object in slot index of the arena named arena, in that
 * slot's generation ("<arena>@<index>.<generation>"), written after prefix
 * bytes of room: a new bytes object (its first prefix bytes left for the
 * caller) or, with prefix < 0, a str.  NULL with an exception. */
static PyObject *slot_name(PyObject *arena, Py_ssize_t index, unsigned long generation,
                           Py_ssize_t prefix)
{
    Py_ssize_t n;
    const char *name = PyUnicode_AsUTF8AndSize(arena, &n);
    if (name == NULL)
        return NULL;
    char digits[48];
    Py_ssize_t d = ps_decimal(digits + 1, index) + 1;
    digits[0] = '@';
    digits[d++] = '.';
    d += ps_decimal(digits + d, (long long)generation);
    Py_ssize_t at = prefix > 0 ? prefix : 0;
    char local[256]; /* an arena's name and a slot's fit: no allocation */
    char *out = at + n + d <= (Py_ssize_t)sizeof local ? local : PyMem_Malloc((size_t)(at + n + d));
    if (out == NULL)
        return PyErr_NoMemory();
    memset(out, 0, (size_t)at);
    memcpy(out + at, name, (size_t)n);
    memcpy(out + at + n, digits, (size_t)d);
    PyObject *r = prefix < 0 ? PyUnicode_DecodeUTF8(out, n + d, "strict")
                             : PyBytes_FromStringAndSize(out, at + n + d);
    if (out != local)
        PyMem_Free(out);
    return r;
}

PyObject *ps_slot_name_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3 || !PyUnicode_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "slot_name(arena: str, index, generation)");
        return NULL;
    }
    Py_ssize_t index = PyNumber_AsSsize_t(args[1], PyExc_OverflowError);
    unsigned long generation = PyLong_AsUnsignedLong(args[2]);
    if (PyErr_Occurred())
        return NULL;
    if (index < 0) {
        PyErr_SetString(PyExc_ValueError, "a slot's index is not negative");
        return NULL;
    }
    return slot_name(args[0], index, generation, -1);
}

/* Forks so far (forking()): an object made before the last fork may be used by
 * the child, so its slot is not this process's to free. */
static uint64_t fork_epoch;

PyObject *ps_forking_py(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    (void)module;
    fork_epoch++; /* with the GIL, in the forking thread */
    Py_RETURN_NONE;
}

uint64_t ps_fork_epoch(void)
{
    return fork_epoch;
}

PyObject *ps_fork_epoch_py(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    (void)module;
    return PyLong_FromUnsignedLongLong(fork_epoch);
}

/* The free list holds (self, index) pairs: a cycle the collector must see. */
static int Slots_traverse(ps_Slots *self, visitproc visit, void *arg)
{
    Py_VISIT(self->free);
    return 0;
}

static int Slots_clear(ps_Slots *self)
{
    Py_CLEAR(self->free);
    return 0;
}

static void Slots_dealloc(ps_Slots *self)
{
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->free);
    Py_CLEAR(self->name);
    ps_view_dealloc((PyObject *)self);
}

/* Slots(mapping, first, slot, slots, flags_at, free, name, mode), checked
 * against the mapping. */
static int Slots_init(ps_Slots *self, PyObject *args, PyObject *kwargs)
{
    PyObject *mapping, *free, *name;
    Py_ssize_t first, slot, slots, flags_at;
    unsigned int mode;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError,
                        "Slots(mapping, first, slot, slots, flags_at, free, name, mode)");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "OnnnnO!UI:Slots", &mapping, &first, &slot, &slots, &flags_at,
                          &PyList_Type, &free, &name, &mode))
        return -1;
    if (mode > 0xffff) {
        PyErr_SetString(PyExc_ValueError, "a mode fits 16 bits");
        return -1;
    }
    if (slot < PS_SLOT_HEADER || slot % 8 != 0 || slots < 0 ||
        slots > (PY_SSIZE_T_MAX - (first > 0 ? first : 0)) / slot) {
        PyErr_SetString(PyExc_ValueError, "slots of at least 8 bytes, a multiple of 8");
        return -1;
    }
    if (ps_mapping_ptr(mapping, first, slots * slot, 8) == NULL ||
        ps_mapping_ptr(mapping, flags_at, 4, 4) == NULL)
        return -1;
    Py_XSETREF(self->mapping, Py_NewRef(mapping));
    self->first = first;
    self->slot = slot;
    self->slots = slots;
    self->flags_at = flags_at;
    Py_XSETREF(self->free, Py_NewRef(free));
    Py_XSETREF(self->name, Py_NewRef(name));
    self->mode = mode;
    return 0;
}

/* Slot index's header words, bounds-checked, or NULL with an exception. */
static _Atomic uint32_t *slot_at(ps_Slots *self, Py_ssize_t index)
{
    if (self->mapping == NULL) {
        PyErr_SetString(PyExc_ValueError, "Slots not initialised");
        return NULL;
    }
    if (index < 0 || index >= self->slots) {
        PyErr_Format(PyExc_IndexError, "slot %zd of %zd", index, self->slots);
        return NULL;
    }
    return (_Atomic uint32_t *)ps_mapping_ptr(self->mapping, self->first + index * self->slot,
                                              self->slot, 8);
}

/* The header words of the slot whose index is arg (an int), as slot_at. */
static _Atomic uint32_t *header(ps_Slots *self, PyObject *arg)
{
    Py_ssize_t index = PyNumber_AsSsize_t(arg, PyExc_IndexError);
    return index == -1 && PyErr_Occurred() ? NULL : slot_at(self, index);
}

/* claim(index) -> generation: a new object in slot index: its data zeroed,
 * then its header live, in the next generation (2**31 - 1 is followed by 1),
 * without flags. */
static PyObject *Slots_claim(ps_Slots *self, PyObject *arg)
{
    _Atomic uint32_t *h = header(self, arg);
    if (h == NULL)
        return NULL;
    uint32_t generation = (atomic_load_explicit(h, memory_order_relaxed) >> 1) + 1;
    if (generation > 0x7fffffffu)
        generation = 1;
    memset((char *)h + PS_SLOT_HEADER, 0, (size_t)(self->slot - PS_SLOT_HEADER));
    atomic_store_explicit(h + 1, 0, memory_order_relaxed);
    atomic_store_explicit(h, generation << 1 | 1u, memory_order_release);
    return PyLong_FromUnsignedLong(generation);
}

PyObject *ps_take_py(PyObject *module, PyObject *free)
{
    (void)module;
    if (!PyList_Check(free)) {
        PyErr_SetString(PyExc_TypeError, "take(free: list)");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(free);
    if (n == 0)
        Py_RETURN_NONE;
    PyObject *entry = PyList_GET_ITEM(free, n - 1);
    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 2 ||
        !PyObject_TypeCheck(PyTuple_GET_ITEM(entry, 0), &ps_SlotsType)) {
        PyErr_SetString(PyExc_TypeError, "a free list holds (Slots, index) pairs");
        return NULL;
    }
    Py_INCREF(entry);
    PyObject *generation = NULL;
    if (PyList_SetSlice(free, n - 1, n, NULL) == 0) /* runs no Python code: entry is held */
        generation =
            Slots_claim((ps_Slots *)PyTuple_GET_ITEM(entry, 0), PyTuple_GET_ITEM(entry, 1));
    if (generation == NULL) {
        Py_DECREF(entry);
        return NULL;
    }
    Py_DECREF(generation);
    return entry;
}

/* data(index): where the data of the object in slot index starts in the
 * mapping. */
static PyObject *Slots_data(ps_Slots *self, PyObject *arg)
{
    char *h = (char *)header(self, arg);
    if (h == NULL)
        return NULL;
    return PyLong_FromSsize_t(h + PS_SLOT_HEADER - ((ps_Mapping *)self->mapping)->base);
}

char *ps_slots_data(PyObject *slots, PyObject *index, Py_ssize_t *size)
{
    ps_Slots *self = (ps_Slots *)slots;
    char *h = (char *)header(self, index);
    *size = self->slot - PS_SLOT_HEADER;
    return h == NULL ? NULL : h + PS_SLOT_HEADER;
}

/* generation(index): how many objects slot index has held. */
static PyObject *Slots_generation(ps_Slots *self, PyObject *arg)
{
    _Atomic uint32_t *h = header(self, arg);
    return h == NULL ? NULL : PyLong_FromUnsignedLong(atomic_load(h) >> 1);
}

/* escape(index) -> generation: the object in slot index may be used by
 * another process from now on (its name was handed out). */
static PyObject *Slots_escape(ps_Slots *self, PyObject *arg)
{
    _Atomic uint32_t *h = header(self, arg);
    if (h == NULL)
        return NULL;
    atomic_fetch_or(h + 1, PS_FLAG_ESCAPED);
    return PyLong_FromUnsignedLong(atomic_load(h) >> 1);
}

/* Whether the object in slot index (made in fork epoch) is this process's
 * alone: made since this process last forked, its name never handed out.  1,
 * 0, or -1 with an exception. */
static int private(ps_Slots *self, PyObject *const *args, Py_ssize_t nargs, _Atomic uint32_t **h)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "expected (index, epoch)");
        return -1;
    }
    if ((*h = header(self, args[0])) == NULL)
        return -1;
    unsigned long long epoch = PyLong_AsUnsignedLongLong(args[1]);
    if (epoch == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    return epoch == fork_epoch && !(atomic_load(*h + 1) & PS_FLAG_ESCAPED);
}

PyObject *ps_slots_record(PyObject *slots, PyObject *index, unsigned kind)
{
    ps_Slots *self = (ps_Slots *)slots;
    Py_ssize_t i = PyNumber_AsSsize_t(index, PyExc_IndexError);
    _Atomic uint32_t *h = i == -1 && PyErr_Occurred() ? NULL : slot_at(self, i);
    if (h == NULL)
        return NULL;
    atomic_fetch_or(h + 1, PS_FLAG_ESCAPED);
    PyObject *record = slot_name(self->name, i, atomic_load(h) >> 1, 3);
    if (record != NULL) {
        char *r = PyBytes_AS_STRING(record);
        r[0] = (char)kind;
        r[1] = (char)(self->mode & 0xff);
        r[2] = (char)(self->mode >> 8);
    }
    return record;
}

/* private(index, epoch): whether the object in slot index (made in fork epoch)
 * is this process's alone. */
static PyObject *Slots_private(ps_Slots *self, PyObject *const *args, Py_ssize_t nargs)
{
    _Atomic uint32_t *h;
    int mine = private(self, args, nargs, &h);
    return mine < 0 ? NULL : PyBool_FromLong(mine);
}

/* release(index, epoch) -> bool: the maker let go of the object in slot index
 * (made in fork epoch): unless another process may hold it, the slot is free
 * (its generation kept) and goes on the free list.  Whether it was freed. */
int ps_slots_release(PyObject *slots, PyObject *const *args, Py_ssize_t nargs)
{
    ps_Slots *self = (ps_Slots *)slots;
    _Atomic uint32_t *h;
    int mine = private(self, args, nargs, &h);
    if (mine <= 0 || self->free == NULL) /* a collected cycle's: no list to free onto */
        return mine;
    PyObject *entry = PyTuple_Pack(2, slots, args[0]);
    if (entry == NULL || PyList_Append(self->free, entry) < 0) {
        Py_XDECREF(entry);
        return -1;
    }
    Py_DECREF(entry);
    atomic_store(h + 1, 0);
    atomic_fetch_and(h, ~1u);
    return 1;
}

static PyObject *Slots_release(ps_Slots *self, PyObject *const *args, Py_ssize_t nargs)
{
    int freed = ps_slots_release((PyObject *)self, args, nargs);
    return freed < 0 ? NULL : PyBool_FromLong(freed);
}

int ps_slots_unlinked(PyObject *slots, PyObject *index)
{
    ps_Slots *self = (ps_Slots *)slots;
    _Atomic uint32_t *h = header(self, index);
    if (h == NULL)
        return -1;
    _Atomic uint32_t *arena =
        (_Atomic uint32_t *)ps_mapping_ptr(self->mapping, self->flags_at, 4, 4);
    if (arena == NULL)
        return -1;
    return ((atomic_load(h + 1) | atomic_load(arena)) & PS_FLAG_UNLINKED) != 0;
}

static PyMethodDef Slots_methods[] = {
    {"claim", (PyCFunction)Slots_claim, METH_O,
     "claim(index) -> generation: a new object in slot index, its data zeroed, its header live."},
    {"data", (PyCFunction)Slots_data, METH_O,
     "data(index): where the data of the object in slot index starts in the mapping."},
    {"generation", (PyCFunction)Slots_generation, METH_O,
     "generation(index): how many objects slot index has held."},
    {"escape", (PyCFunction)Slots_escape, METH_O,
     "escape(index) -> generation: the object may be used by other processes from now on."},
    {"private", (PyCFunction)(void (*)(void))Slots_private, METH_FASTCALL,
     "private(index, epoch): whether the object (made in fork epoch) is this process's alone."},
    {"release", (PyCFunction)(void (*)(void))Slots_release, METH_FASTCALL,
     "release(index, epoch) -> bool: free the slot, onto the free list, if it is private."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Slots_members[] = {
    {"mapping", T_OBJECT_EX, offsetof(ps_Slots, mapping), READONLY, "the arena's mapping"},
    {"first", T_PYSSIZET, offsetof(ps_Slots, first), READONLY, "where slot 0 starts in it"},
    {"slot", T_PYSSIZET, offsetof(ps_Slots, slot), READONLY, "bytes a slot takes"},
    {"slots", T_PYSSIZET, offsetof(ps_Slots, slots), READONLY, "how many slots the arena has"},
    {NULL, 0, 0, 0, NULL},
};

PyTypeObject ps_SlotsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "procshare._core.Slots",
    .tp_basicsize = sizeof(ps_Slots),
    .tp_dealloc = (destructor)Slots_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Slots(mapping, first, slot, slots, flags_at, free, name, mode): the slot headers of "
              "one arena.",
    .tp_traverse = (traverseproc)Slots_traverse,
    .tp_clear = (inquiry)Slots_clear,
    .tp_methods = Slots_methods,
    .tp_members = Slots_members,
    .tp_init = (initproc)Slots_init,
    .tp_new = PyType_GenericNew,
};
