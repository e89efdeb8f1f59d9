#include "generation.h"

#include <stdatomic.h>
#include <structmember.h>

#include "codec.h"
#include "mapping.h"
#include "mutex.h"
#include "roots.h"
#include "table.h"
#include "vector.h"

static void Generation_dealloc(ps_Generation *self)
{
    Py_CLEAR(self->table);
    Py_CLEAR(self->lock);
    Py_CLEAR(self->hold);
    Py_CLEAR(self->place);
    Py_CLEAR(self->root);
    Py_CLEAR(self->table_seg);
    Py_CLEAR(self->mapping);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The handle is collected: this process lets go of its root (hold.gone(), or
 * for a new root whose handle made no Slot, ps_root_gone).  Errors are
 * reported as unraisable, as __del__'s are. */
static void Generation_finalize(ps_Generation *self)
{
    PyObject *hold = self->hold, *place = self->place;
    if ((hold == NULL || hold == Py_None) && (place == NULL || place == Py_None))
        return; /* construction stopped before it was held */
    ps_pending pending = ps_pending_take();
    static PyObject *gone;
    int failed;
    if (hold != NULL && hold != Py_None) {
        PyObject *r = NULL;
        if (gone != NULL || (gone = PyUnicode_InternFromString("gone")) != NULL)
            r = PyObject_CallMethodNoArgs(hold, gone);
        failed = r == NULL;
        Py_XDECREF(r);
    } else
        failed = ps_root_gone(place) < 0;
    if (failed)
        PyErr_WriteUnraisable((PyObject *)self);
    ps_pending_restore(pending);
}

/* _watch(mapping, offset): the root's generation word, compared with _gen. */
static PyObject *Generation_watch(ps_Generation *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_watch(mapping, offset)");
        return NULL;
    }
    Py_ssize_t offset = PyNumber_AsSsize_t(args[1], PyExc_OverflowError);
    if (offset == -1 && PyErr_Occurred())
        return NULL;
    char *p = ps_mapping_ptr(args[0], offset, 8, 8);
    if (p == NULL)
        return NULL;
    Py_XSETREF(self->mapping, Py_NewRef(args[0]));
    self->gen_word = (_Atomic uint64_t *)p;
    Py_RETURN_NONE;
}

static _Atomic uint64_t *watched(ps_Generation *self)
{
    if (self->gen_word == NULL)
        PyErr_SetString(PyExc_RuntimeError, "no generation word watched yet");
    return self->gen_word;
}

/* _generation(): the root's generation now (one atomic load). */
static PyObject *Generation_generation(ps_Generation *self, PyObject *Py_UNUSED(ignored))
{
    _Atomic uint64_t *word = watched(self);
    return word == NULL ? NULL : PyLong_FromUnsignedLongLong(atomic_load(word));
}

/* _publish(gen): store gen in the root's generation word, after the table it names
 * is complete (a release store: readers that load gen see the table whole). */
static PyObject *Generation_publish(ps_Generation *self, PyObject *arg)
{
    unsigned long long gen = PyLong_AsUnsignedLongLong(arg);
    if (gen == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    _Atomic uint64_t *word = watched(self);
    if (word == NULL)
        return NULL;
    atomic_store(word, gen);
    Py_RETURN_NONE;
}

ps_Generation *ps_generation_alloc(PyTypeObject *type)
{
    ps_Generation *self = (ps_Generation *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->hold = Py_NewRef(Py_None);
    self->place = Py_NewRef(Py_None);
    self->root = Py_NewRef(Py_None);
    self->table_seg = Py_NewRef(Py_None);
    if (ps_untrack_ours((PyObject *)self) < 0)
        Py_CLEAR(self);
    return self;
}

/* Dict() or List(): with no arguments, a new empty one in a free slot of its
 * pool, in one call (ps_new_root); else, or with no slot at hand, the class's
 * _new(*args, **kwargs). */
static PyObject *Generation_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) == 0 && (kwargs == NULL || PyDict_GET_SIZE(kwargs) == 0)) {
        PyObject *made = ps_new_root((PyObject *)type);
        if (made != Py_None)
            return made;
        Py_DECREF(made);
    }
    static PyObject *name;
    if (name == NULL && (name = PyUnicode_InternFromString("_new")) == NULL)
        return NULL;
    PyObject *make = PyObject_GetAttr((PyObject *)type, name);
    if (make == NULL)
        return NULL;
    PyObject *made = PyObject_Call(make, args, kwargs);
    Py_DECREF(make);
    return made;
}

/* _bare(): a handle of this class with nothing bound, for the Python layer to
 * bind. */
static PyObject *Generation_bare(PyObject *type, PyObject *Py_UNUSED(ignored))
{
    return (PyObject *)ps_generation_alloc((PyTypeObject *)type);
}

PyObject *ps_generation_place(PyObject *obj)
{
    return PyObject_TypeCheck(obj, &ps_GenerationType) ? ((ps_Generation *)obj)->place : NULL;
}

/* __init__: nothing right after __new__, which applied the arguments; called
 * again on an existing object, _reinit(*args, **kwargs) (as list and dict
 * re-initialise). */
static int Generation_init(ps_Generation *self, PyObject *args, PyObject *kwargs)
{
    if (self->fresh) {
        self->fresh = 0;
        return 0;
    }
    static PyObject *name;
    if (name == NULL && (name = PyUnicode_InternFromString("_reinit")) == NULL)
        return -1;
    PyObject *reinit = PyObject_GetAttr((PyObject *)self, name);
    if (reinit == NULL)
        return -1;
    PyObject *r = PyObject_Call(reinit, args, kwargs);
    Py_DECREF(reinit);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

static PyMethodDef Generation_methods[] = {
    {"_bare", (PyCFunction)Generation_bare, METH_NOARGS | METH_CLASS,
     "_bare(): a handle of this class with nothing bound."},
    {"_watch", (PyCFunction)(void (*)(void))Generation_watch, METH_FASTCALL,
     "_watch(mapping, offset): the root's generation word, compared with _gen."},
    {"_generation", (PyCFunction)Generation_generation, METH_NOARGS,
     "_generation(): the root's generation now (one atomic load)."},
    {"_publish", (PyCFunction)Generation_publish, METH_O,
     "_publish(gen): store gen in the root's generation word (its table complete)."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Generation_members[] = {
    {"_table", T_OBJECT_EX, offsetof(ps_Generation, table), 0, "the current table"},
    {"_writers", T_OBJECT_EX, offsetof(ps_Generation, lock), 0, "the writers' lock"},
    {"_gen", T_ULONGLONG, offsetof(ps_Generation, gen), 0, "the generation of _table"},
    {"_fresh", T_BOOL, offsetof(ps_Generation, fresh), 0, "built by __new__, __init__ to come"},
    {"_hold", T_OBJECT_EX, offsetof(ps_Generation, hold), 0, "this process's hold, or None"},
    {"_place", T_OBJECT_EX, offsetof(ps_Generation, place), 0, "a new root's slot, or None"},
    {"_root", T_OBJECT_EX, offsetof(ps_Generation, root), 0, "the root's Segment, or None"},
    {"_table_seg", T_OBJECT_EX, offsetof(ps_Generation, table_seg), 0,
     "the current table's Segment, or None (in the root's slot)"},
    {NULL, 0, 0, 0, NULL},
};

PyTypeObject ps_GenerationType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "procshare._core.Generation",
    .tp_basicsize = sizeof(ps_Generation),
    .tp_dealloc = (destructor)Generation_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "What a Dict or List handle keeps in C: its current table (_table), that "
              "table's generation (_gen), the root's generation word and the writers' lock.",
    .tp_methods = Generation_methods,
    .tp_members = Generation_members,
    .tp_init = (initproc)Generation_init,
    .tp_new = Generation_new,
    .tp_finalize = (destructor)Generation_finalize,
};

/* ---- DictOps: a Dict's hot methods in one C call ------------------------ */

static PyObject *MISSING, *SLOW; /* private sentinels */
static PyObject *N_LOOKUP, *N_WRITABLE, *N_SETITEM, *N_DELITEM, *N_INCR, *N_CAS, *N_LEN, *N_POP;

/* self.name(a, b, c), with the trailing NULL arguments left out: the Python
 * layer's general paths. */
static PyObject *call(PyObject *self, PyObject *name, PyObject *a, PyObject *b, PyObject *c)
{
    PyObject *args[4] = {self, a, b, c};
    size_t n = a == NULL ? 1 : b == NULL ? 2 : c == NULL ? 3 : 4;
    return PyObject_VectorcallMethod(name, args, n | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

/* The current table (of type: a Dict's Table, a List's Vector), or NULL when
 * the generation moved on (or before the Python layer bound one): then the
 * Python methods follow it. */
static PyObject *current_table(ps_Generation *self, PyTypeObject *type)
{
    if (self->gen_word == NULL || self->table == NULL || !Py_IS_TYPE(self->table, type) ||
        atomic_load(self->gen_word) != self->gen)
        return NULL;
    return self->table;
}

/* The value of key, or missing: one lock-free C lookup when the generation is
 * current and the key an exact str, bytes or int; else Dict._lookup. */
static PyObject *lookup(ps_Generation *self, PyObject *key, PyObject *missing)
{
    PyObject *table = current_table(self, &ps_TableType);
    if (table != NULL) {
        uint64_t gen = self->gen;
        PyObject *args[3] = {key, missing, SLOW};
        PyObject *value = ps_table_lookup(table, args, 3);
        if (value == NULL)
            return NULL;
        if (value != SLOW && atomic_load(self->gen_word) == gen)
            return value;
        Py_DECREF(value);
    }
    return call((PyObject *)self, N_LOOKUP, key, missing, NULL);
}

/* len() of a Dict or List: the current table's count (Table and Vector count
 * alike), else the Python layer's _len, which follows the generation. */
static Py_ssize_t length(ps_Generation *self)
{
    PyTypeObject *type = self->table != NULL && Py_IS_TYPE(self->table, &ps_VectorType)
                             ? &ps_VectorType
                             : &ps_TableType;
    PyObject *table = current_table(self, type);
    if (table != NULL)
        return Py_TYPE(table)->tp_as_sequence->sq_length(table);
    PyObject *n = call((PyObject *)self, N_LEN, NULL, NULL, NULL);
    if (n == NULL)
        return -1;
    Py_ssize_t len = PyNumber_AsSsize_t(n, PyExc_OverflowError);
    Py_DECREF(n);
    return len;
}

/* The value of a removed element, found = its (tag, data) from the table,
 * decoded after the lock (decoding may unpickle: user code); found released. */
static PyObject *decoded(PyObject *found)
{
    PyObject *data = PyTuple_GET_ITEM(found, 1);
    PyObject *value = ps_decode_value((uint32_t)PyLong_AsUnsignedLong(PyTuple_GET_ITEM(found, 0)),
                                      PyBytes_AS_STRING(data), (uint64_t)PyBytes_GET_SIZE(data));
    Py_DECREF(found);
    return value;
}

/* KeyError(key), as dict raises it (a tuple key shown as the tuple). */
static void key_error(PyObject *key)
{
    PyObject *err = PyTuple_Pack(1, key);
    if (err != NULL) {
        PyErr_SetObject(PyExc_KeyError, err);
        Py_DECREF(err);
    }
}

static PyObject *DictOps_subscript(ps_Generation *self, PyObject *key)
{
    PyObject *value = lookup(self, key, MISSING);
    if (value == MISSING) {
        Py_DECREF(value);
        key_error(key);
        return NULL;
    }
    return value;
}

static PyObject *DictOps_get(ps_Generation *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "get(key, default=None)");
        return NULL;
    }
    return lookup(self, args[0], nargs == 2 ? args[1] : Py_None);
}

static int DictOps_contains(ps_Generation *self, PyObject *key)
{
    PyObject *value = lookup(self, key, MISSING);
    if (value == NULL)
        return -1;
    Py_DECREF(value);
    return value != MISSING;
}

typedef PyObject *(*table_op)(PyObject *table, PyObject *const *args, Py_ssize_t nargs);

/* op(current table, of type, args) holding the writers' lock: after following
 * the generation (and recounting, if a writer died) in the Python layer, which
 * runs no user code.  op's result, SLOW when there is no lock or table to work
 * on, or NULL with an exception. */
static PyObject *under_lock(ps_Generation *self, PyTypeObject *type, table_op op,
                            PyObject *const *args, Py_ssize_t nargs)
{
    if (self->lock == NULL || !PyObject_TypeCheck(self->lock, &ps_MutexType))
        return Py_NewRef(SLOW);
    PyObject *lock = Py_NewRef(self->lock);
    PyObject *took = ps_mutex_enter(lock);
    if (took == NULL) {
        Py_DECREF(lock);
        return NULL;
    }
    Py_DECREF(took);
    PyObject *done = NULL;
    int ready = 1;
    if (current_table(self, type) == NULL || ps_mutex_died(lock)) {
        PyObject *t = call((PyObject *)self, N_WRITABLE, NULL, NULL, NULL);
        ready = t != NULL;
        Py_XDECREF(t);
    }
    if (ready)
        done = current_table(self, type) == NULL ? Py_NewRef(SLOW) : op(self->table, args, nargs);
    if (ps_mutex_exit(lock) < 0)
        Py_CLEAR(done);
    Py_DECREF(lock);
    return done;
}

/* d[key] = value in C: simple encodings are stored in one step under the
 * lock; anything else is encoded first (pickling runs user code, so never
 * under the lock), then put.  1 stored, 0 the table is full (Dict._setitem
 * grows it), -1 with an exception. */
static int store(ps_Generation *self, PyObject *key, PyObject *value)
{
    PyObject *args[3] = {key, value, SLOW};
    PyObject *done = ps_fast_type(value) /* else encoded first: no lock taken for nothing */
                         ? under_lock(self, &ps_TableType, ps_table_store, args, 3)
                         : Py_NewRef(SLOW);
    if (done == SLOW) {
        Py_DECREF(done);
        PyObject *pair[2] = {key, value};
        PyObject *item = ps_encode_item_py(NULL, pair, 2); /* (canon, key, tag, value) */
        if (item == NULL)
            return -1;
        done = under_lock(self, &ps_TableType, ps_table_put, PySequence_Fast_ITEMS(item), 4);
        Py_DECREF(item);
    }
    if (done == NULL)
        return -1;
    int stored = done != SLOW && PyLong_AsLong(done) >= 0;
    Py_DECREF(done);
    return stored;
}

static PyObject *delete_op(PyObject *table, PyObject *const *args, Py_ssize_t nargs)
{
    (void)nargs;
    return ps_table_delete(table, args[0]);
}

/* Remove key under the lock: its (tag, data), None when absent, SLOW when the
 * Python layer must (another generation, no lock yet), or NULL with an error. */
static PyObject *remove_key(ps_Generation *self, PyObject *key)
{
    PyObject *canon = ps_canonical(key);
    if (canon == NULL)
        return NULL;
    PyObject *found = under_lock(self, &ps_TableType, delete_op, &canon, 1);
    Py_DECREF(canon);
    return found;
}

static int DictOps_ass_subscript(ps_Generation *self, PyObject *key, PyObject *value)
{
    PyObject *r;
    if (value == NULL) {
        PyObject *found = remove_key(self, key);
        if (found == NULL)
            return -1;
        if (found != SLOW) {
            int absent = found == Py_None;
            Py_DECREF(found);
            if (absent)
                key_error(key);
            return absent ? -1 : 0;
        }
        Py_DECREF(found);
        r = call((PyObject *)self, N_DELITEM, key, NULL, NULL);
    } else {
        int stored = store(self, key, value);
        if (stored != 0)
            return stored < 0 ? -1 : 0;
        r = call((PyObject *)self, N_SETITEM, key, value, NULL);
    }
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

static PyObject *ONE, *ZERO;

/* incr(key, n=1, default=0): in place when an int is stored (table.c), else
 * Dict._incr. */
static PyObject *DictOps_incr(ps_Generation *self, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames)
{
    static const char *const names[] = {"key", "n", "default"};
    PyObject *a[3];
    if (ps_parse_args("incr(key, n=1, default=0)", names, 3, args, nargs, kwnames, a) < 0)
        return NULL;
    if (a[0] == NULL) {
        PyErr_SetString(PyExc_TypeError, "incr(key, n=1, default=0): key is missing");
        return NULL;
    }
    PyObject *n = a[1] ? a[1] : ONE, *dflt = a[2] ? a[2] : ZERO;
    PyObject *r = Py_NewRef(SLOW);
    if (self->table != NULL && Py_IS_TYPE(self->table, &ps_TableType)) {
        PyObject *targs[3] = {a[0], n, SLOW};
        Py_SETREF(r, ps_table_incr(self->table, targs, 3));
    }
    if (r == SLOW) {
        Py_DECREF(r);
        r = call((PyObject *)self, N_INCR, a[0], n, dflt);
    }
    return r;
}

/* compare_and_set(key, expected, new): in place for ints (table.c), else
 * Dict._compare_and_set. */
static PyObject *DictOps_compare_and_set(ps_Generation *self, PyObject *const *args,
                                         Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"key", "expected", "new"};
    static const char sig[] = "compare_and_set(key, expected, new)";
    PyObject *a[3];
    if (ps_parse_args(sig, names, 3, args, nargs, kwnames, a) < 0)
        return NULL;
    if (a[0] == NULL || a[1] == NULL || a[2] == NULL) {
        PyErr_Format(PyExc_TypeError, "%s: an argument is missing", sig);
        return NULL;
    }
    PyObject *r = Py_NewRef(SLOW);
    if (self->table != NULL && Py_IS_TYPE(self->table, &ps_TableType)) {
        PyObject *targs[4] = {a[0], a[1], a[2], SLOW};
        Py_SETREF(r, ps_table_cas(self->table, targs, 4));
    }
    if (r == SLOW) {
        Py_DECREF(r);
        r = call((PyObject *)self, N_CAS, a[0], a[1], a[2]);
    }
    return r;
}

/* pop(key[, default]): removed under the lock, decoded after it (decoding may
 * unpickle: user code); Dict._pop when the Python layer must. */
static PyObject *DictOps_pop(ps_Generation *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "pop(key[, default])");
        return NULL;
    }
    PyObject *found = remove_key(self, args[0]);
    if (found == NULL)
        return NULL;
    if (found == SLOW) {
        Py_DECREF(found);
        return call((PyObject *)self, N_POP, args[0], nargs == 2 ? args[1] : NULL, NULL);
    }
    if (found == Py_None) {
        Py_DECREF(found);
        if (nargs == 2)
            return Py_NewRef(args[1]);
        key_error(args[0]);
        return NULL;
    }
    return decoded(found);
}

static PyMethodDef DictOps_methods[] = {
    {"pop", (PyCFunction)(void (*)(void))DictOps_pop, METH_FASTCALL,
     "pop(key[, default]): remove key and return its value, in one step (one call)."},
    {"get", (PyCFunction)(void (*)(void))DictOps_get, METH_FASTCALL,
     "get(key, default=None): the value of key, or default. Lock-free."},
    {"incr", (PyCFunction)(void (*)(void))DictOps_incr, METH_FASTCALL | METH_KEYWORDS,
     "incr(key, n=1, default=0): d[key] = d.get(key, default) + n in one step; the new "
     "value. An int already stored is updated in place with one atomic add, no lock."},
    {"compare_and_set", (PyCFunction)(void (*)(void))DictOps_compare_and_set,
     METH_FASTCALL | METH_KEYWORDS,
     "compare_and_set(key, expected, new) -> bool: set d[key] = new if it equals expected, in "
     "one step (in place, without a lock, for an int stored and int arguments)."},
    {NULL, NULL, 0, NULL},
};

static PyMappingMethods DictOps_as_mapping = {
    .mp_length = (lenfunc)length,
    .mp_subscript = (binaryfunc)DictOps_subscript,
    .mp_ass_subscript = (objobjargproc)DictOps_ass_subscript,
};

static PySequenceMethods DictOps_as_sequence = {
    .sq_contains = (objobjproc)DictOps_contains,
};

PyTypeObject ps_DictOpsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "procshare._core.DictOps",
    .tp_basicsize = sizeof(ps_Generation),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "A Dict's hot methods, each one C call in the common case: d[k], get, in, "
              "d[k] = v, del d[k], pop, len, incr, compare_and_set; the Python layer's "
              "_lookup, _setitem, _delitem, _pop, _len, _incr and _compare_and_set take "
              "the rest.",
    .tp_methods = DictOps_methods,
    .tp_as_mapping = &DictOps_as_mapping,
    .tp_as_sequence = &DictOps_as_sequence,
    .tp_base = &ps_GenerationType,
};

/* ---- ListOps: a List's hot methods in one C call ------------------------ */

static PyObject *N_GETITEM, *N_APPEND;

/* Element i (i < 0 counts from the end) in one lock-free read of the current
 * table: the value, MISSING outside the list, SLOW when the generation moved
 * on (List._getitem follows it), or NULL with an exception. */
static PyObject *item_at(ps_Generation *self, Py_ssize_t i)
{
    PyObject *table = current_table(self, &ps_VectorType);
    if (table == NULL)
        return Py_NewRef(SLOW);
    uint64_t gen = self->gen;
    PyObject *value = ps_vector_at(table, i, MISSING);
    if (value == NULL || atomic_load(self->gen_word) == gen)
        return value;
    Py_DECREF(value);
    return Py_NewRef(SLOW);
}

/* l[i]: item_at when i is an int; List._getitem for a slice, another index
 * type or another generation. */
static PyObject *ListOps_subscript(ps_Generation *self, PyObject *i)
{
    if (PyLong_CheckExact(i)) {
        Py_ssize_t n = PyNumber_AsSsize_t(i, PyExc_IndexError);
        if (n == -1 && PyErr_Occurred())
            return NULL;
        PyObject *value = item_at(self, n);
        if (value == MISSING) {
            Py_DECREF(value);
            PyErr_SetString(PyExc_IndexError, "list index out of range");
            return NULL;
        }
        if (value != SLOW)
            return value;
        Py_DECREF(value);
    }
    return call((PyObject *)self, N_GETITEM, i, NULL, NULL);
}

/* Vector.set with a negative index counted from the end, as list does: args
 * are (index, tag, data), the index an exact int. */
static PyObject *set_at(PyObject *table, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t i = PyNumber_AsSsize_t(args[0], PyExc_IndexError);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    if (i >= 0)
        return ps_vector_set(table, args, nargs);
    PyObject *at = PyLong_FromSsize_t(i + ps_vector_len(table));
    if (at == NULL)
        return NULL;
    PyObject *placed[3] = {at, args[1], args[2]};
    PyObject *done = ps_vector_set(table, placed, nargs);
    Py_DECREF(at);
    return done;
}

/* op(current Vector, [at,] tag, data) under the writers' lock, value encoded
 * first (pickling runs user code, so never under the lock): 1 done, 0 not (a
 * full table, or no lock or current table yet: the Python layer's turn), -1
 * with an exception. */
static int put_encoded(ps_Generation *self, table_op op, PyObject *at, PyObject *value)
{
    PyObject *encoded = ps_encode_value_py(NULL, value); /* (tag, data) */
    if (encoded == NULL)
        return -1;
    PyObject *args[3] = {at, PyTuple_GET_ITEM(encoded, 0), PyTuple_GET_ITEM(encoded, 1)};
    PyObject *done = at == NULL ? under_lock(self, &ps_VectorType, op, args + 1, 2)
                                : under_lock(self, &ps_VectorType, op, args, 3);
    Py_DECREF(encoded);
    if (done == NULL)
        return -1;
    int put = done == Py_True;
    Py_DECREF(done);
    return put;
}

/* l[i] = value in one call when i is an int; List._setitem for a slice, a
 * full heap or no lock yet, and List._delitem for del l[i]. */
static int ListOps_ass_subscript(ps_Generation *self, PyObject *i, PyObject *value)
{
    PyObject *r;
    if (value == NULL) {
        r = call((PyObject *)self, N_DELITEM, i, NULL, NULL);
    } else {
        int put = PyLong_CheckExact(i) ? put_encoded(self, set_at, i, value) : 0;
        if (put != 0)
            return put < 0 ? -1 : 0;
        r = call((PyObject *)self, N_SETITEM, i, value, NULL);
    }
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

/* append(value) in one call; List._append when the table is full, or there
 * is no lock or current table yet. */
static PyObject *ListOps_append(ps_Generation *self, PyObject *value)
{
    int put = put_encoded(self, ps_vector_append, NULL, value);
    if (put < 0)
        return NULL;
    if (put)
        Py_RETURN_NONE;
    return call((PyObject *)self, N_APPEND, value, NULL, NULL);
}

static PyObject *pop_last(PyObject *table, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args;
    (void)nargs;
    return ps_vector_pop_last(table, NULL);
}

/* pop(): the last element taken under the lock and decoded after it (decoding
 * may unpickle: user code); List._pop for an index, an empty list (its error),
 * or no lock or current table yet. */
static PyObject *ListOps_pop(ps_Generation *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs == 0) {
        PyObject *found = under_lock(self, &ps_VectorType, pop_last, NULL, 0);
        if (found == NULL)
            return NULL;
        if (PyTuple_Check(found))
            return decoded(found);
        Py_DECREF(found); /* None (empty) or SLOW */
    } else if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "pop(index=-1)");
        return NULL;
    }
    return call((PyObject *)self, N_POP, nargs ? args[0] : NULL, NULL, NULL);
}

/* A List's iterator: reads by index (step 1 or -1) through ListOps's own l[i],
 * as list's iterators do, so elements appended meanwhile are seen; once
 * exhausted, it stays exhausted. */
typedef struct {
    PyObject_HEAD
    PyObject *list; /* NULL once exhausted */
    Py_ssize_t i, step;
} ps_ListIter;

static void ListIter_dealloc(ps_ListIter *self)
{
    PyObject_GC_UnTrack(self);
    Py_XDECREF(self->list);
    PyObject_GC_Del(self);
}

static int ListIter_traverse(ps_ListIter *self, visitproc visit, void *arg)
{
    Py_VISIT(self->list);
    return 0;
}

static PyObject *ListIter_next(ps_ListIter *self)
{
    if (self->list == NULL)
        return NULL;
    PyObject *value =
        self->i < 0 ? Py_NewRef(MISSING) : item_at((ps_Generation *)self->list, self->i);
    if (value == SLOW) { /* another generation: List._getitem follows it */
        Py_DECREF(value);
        PyObject *index = PyLong_FromSsize_t(self->i);
        value = index == NULL ? NULL : call(self->list, N_GETITEM, index, NULL, NULL);
        Py_XDECREF(index);
        if (value == NULL && PyErr_ExceptionMatches(PyExc_IndexError)) {
            PyErr_Clear();
            value = Py_NewRef(MISSING);
        }
    }
    if (value == NULL)
        return NULL;
    if (value != MISSING) {
        self->i += self->step;
        return value;
    }
    Py_DECREF(value);
    Py_CLEAR(self->list); /* exhausted, and stays so */
    return NULL;
}

static PyObject *ListIter_length_hint(ps_ListIter *self, PyObject *unused)
{
    (void)unused;
    if (self->list == NULL)
        return PyLong_FromLong(0);
    Py_ssize_t n = PyObject_Length(self->list);
    if (n < 0)
        return NULL;
    Py_ssize_t left = self->step > 0 ? n - self->i : self->i + 1;
    return PyLong_FromSsize_t(left > 0 ? left : 0);
}

static PyMethodDef ListIter_methods[] = {
    {"__length_hint__", (PyCFunction)ListIter_length_hint, METH_NOARGS,
     "How many elements are left, were the list to stay as it is."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject ps_ListIterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "procshare._core.ListIterator",
    .tp_basicsize = sizeof(ps_ListIter),
    .tp_dealloc = (destructor)ListIter_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)ListIter_traverse,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)ListIter_next,
    .tp_methods = ListIter_methods,
    .tp_doc = "A List's iterator: reads by index, as list's iterators do.",
};

static PyObject *list_iter(PyObject *list, Py_ssize_t start, Py_ssize_t step)
{
    ps_ListIter *it = PyObject_GC_New(ps_ListIter, &ps_ListIterType);
    if (it == NULL)
        return NULL;
    it->list = Py_NewRef(list);
    it->i = start;
    it->step = step;
    PyObject_GC_Track(it);
    return (PyObject *)it;
}

static PyObject *ListOps_iter(PyObject *self)
{
    return list_iter(self, 0, 1);
}

static PyObject *ListOps_reversed(PyObject *self, PyObject *unused)
{
    (void)unused;
    Py_ssize_t n = PyObject_Length(self);
    return n < 0 ? NULL : list_iter(self, n - 1, -1);
}

static PyMethodDef ListOps_methods[] = {
    {"__reversed__", (PyCFunction)ListOps_reversed, METH_NOARGS,
     "An iterator from the last element to the first, reading by index."},
    {"pop", (PyCFunction)(void (*)(void))ListOps_pop, METH_FASTCALL,
     "pop(index=-1): remove and return an element (the last: one call under the lock)."},
    {"append", (PyCFunction)ListOps_append, METH_O,
     "append(value): add value at the end, in one call under the writers' lock."},
    {NULL, NULL, 0, NULL},
};

static PyMappingMethods ListOps_as_mapping = {
    .mp_length = (lenfunc)length,
    .mp_subscript = (binaryfunc)ListOps_subscript,
    .mp_ass_subscript = (objobjargproc)ListOps_ass_subscript,
};

PyTypeObject ps_ListOpsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "procshare._core.ListOps",
    .tp_basicsize = sizeof(ps_Generation),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "A List's hot methods, each one C call in the common case: l[i], "
              "l[i] = v, len(l), append, pop(); the Python layer's _getitem, _setitem, "
              "_delitem, _len, _append and _pop take the rest.",
    .tp_methods = ListOps_methods,
    .tp_as_mapping = &ListOps_as_mapping,
    .tp_iter = ListOps_iter,
    .tp_base = &ps_GenerationType,
};

int ps_generation_init(void)
{
    MISSING = PyObject_CallNoArgs((PyObject *)&PyBaseObject_Type);
    SLOW = PyObject_CallNoArgs((PyObject *)&PyBaseObject_Type);
    ONE = PyLong_FromLong(1);
    ZERO = PyLong_FromLong(0);
    N_LOOKUP = PyUnicode_InternFromString("_lookup");
    N_WRITABLE = PyUnicode_InternFromString("_writable");
    N_SETITEM = PyUnicode_InternFromString("_setitem");
    N_DELITEM = PyUnicode_InternFromString("_delitem");
    N_INCR = PyUnicode_InternFromString("_incr");
    N_CAS = PyUnicode_InternFromString("_compare_and_set");
    N_GETITEM = PyUnicode_InternFromString("_getitem");
    N_LEN = PyUnicode_InternFromString("_len");
    N_APPEND = PyUnicode_InternFromString("_append");
    N_POP = PyUnicode_InternFromString("_pop");
    return MISSING == NULL || SLOW == NULL || ONE == NULL || ZERO == NULL || N_LOOKUP == NULL ||
                   N_WRITABLE == NULL || N_SETITEM == NULL || N_DELITEM == NULL || N_INCR == NULL ||
                   N_CAS == NULL || N_GETITEM == NULL || N_LEN == NULL || N_APPEND == NULL ||
                   N_POP == NULL
               ? -1
               : 0;
}
