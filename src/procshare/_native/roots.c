#include "roots.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>

#include "generation.h"
#include "mapping.h"
#include "platform.h"
#include "slots.h"

/* The Python layer's state (hold_roots): roots held, pools of slots, and the
 * call that drops an unlinked new root's tables. */
static PyObject *held, *pools, *drop;

PyObject *ps_hold_roots_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3 || !PyDict_Check(args[0]) || !PyDict_Check(args[1]) ||
        !PyCallable_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "hold_roots(held: dict, pools: dict, drop: callable)");
        return NULL;
    }
    Py_XSETREF(held, Py_NewRef(args[0]));
    Py_XSETREF(pools, Py_NewRef(args[1]));
    Py_XSETREF(drop, Py_NewRef(args[2]));
    Py_RETURN_NONE;
}

/* ---- tokens ------------------------------------------------------------- */

#define TOKENS 32 /* 256 bytes: what one call to the CSPRNG gives */
static uint64_t tokens[TOKENS];
static int tokens_left;
static uint32_t tokens_pid; /* the process that drew them: a forked child draws afresh */

static int next_token(uint64_t *token)
{
    if (tokens_left == 0 || tokens_pid != ps_self_pid()) {
        if (ps_random(tokens, sizeof tokens) < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        tokens_left = TOKENS;
        tokens_pid = ps_self_pid();
    }
    *token = tokens[--tokens_left];
    return 0;
}

PyObject *ps_token_number_py(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    (void)module;
    uint64_t token;
    return next_token(&token) < 0 ? NULL : PyLong_FromUnsignedLongLong(token);
}

/* ---- a new root --------------------------------------------------------- */

/* A new cls object in the claimed slot index of slots: its first table written
 * by init(mapping, offset, *args) (nargs of them), then its generation (1), its
 * first user (this process) and its token; registered in held as this
 * process's (None) under its place.  No other process can see the slot yet.
 * On failure the slot is released. */
static PyObject *in_slot(PyObject *cls, PyObject *slots, PyObject *index, PyObject *init,
                         PyObject *const *args, Py_ssize_t nargs)
{
    if (held == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "hold_roots() was not called");
        return NULL;
    }
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &ps_GenerationType) ||
        !PyObject_TypeCheck(slots, &ps_SlotsType) || nargs > 4) {
        PyErr_SetString(PyExc_TypeError, "a Generation class, a Slots and at most 4 init args");
        return NULL;
    }
    Py_ssize_t size;
    char *data = ps_slots_data(slots, index, &size);
    if (data == NULL)
        return NULL;
    PyObject *mapping = ((ps_View *)slots)->mapping;
    PyObject *epoch = PyLong_FromUnsignedLongLong(ps_fork_epoch());
    PyObject *place = epoch == NULL ? NULL : PyTuple_Pack(3, slots, index, epoch);
    Py_XDECREF(epoch);
    if (place == NULL)
        return NULL;
    ps_Generation *self = NULL;
    PyObject *offset = NULL, *done = NULL;
    uint64_t token;
    if (size < PS_ROOT_INLINE) {
        PyErr_SetString(PyExc_ValueError, "the slot has no room for a root");
        goto fail;
    }
    self = ps_generation_alloc((PyTypeObject *)cls);
    offset = PyLong_FromSsize_t(data + PS_ROOT_INLINE - ((ps_Mapping *)mapping)->base);
    if (self == NULL || offset == NULL || next_token(&token) < 0)
        goto fail;
    PyObject *stack[6] = {mapping, offset};
    for (Py_ssize_t i = 0; i < nargs; i++)
        stack[2 + i] = args[i];
    if ((done = PyObject_Vectorcall(init, stack, (size_t)(2 + nargs), NULL)) == NULL)
        goto fail;
    atomic_store_explicit((_Atomic uint64_t *)(data + PS_ROOT_GEN), 1, memory_order_relaxed);
    atomic_store_explicit((_Atomic uint32_t *)(data + PS_ROOT_USERS), ps_self_pid(),
                          memory_order_relaxed);
    atomic_store_explicit((_Atomic uint64_t *)(data + PS_ROOT_TOKEN), token, memory_order_relaxed);
    if (PyDict_SetItem(held, place, Py_None) < 0)
        goto fail;
    Py_SETREF(self->place, place); /* collected from here on, it lets go of the place */
    self->mapping = Py_NewRef(mapping);
    self->gen_word = (_Atomic uint64_t *)(data + PS_ROOT_GEN);
    self->fresh = 1;
    Py_DECREF(offset);
    Py_DECREF(done);
    return (PyObject *)self;
fail:;
    ps_pending pending = ps_pending_take();
    if (ps_slots_release(slots, &PyTuple_GET_ITEM(place, 1), 2) < 0)
        PyErr_Clear(); /* the first error is the one to report */
    ps_pending_restore(pending);
    Py_XDECREF(self);
    Py_XDECREF(offset);
    Py_XDECREF(done);
    Py_DECREF(place);
    return NULL;
}

PyObject *ps_new_root(PyObject *cls)
{
    static PyObject *blank_name, *free_name;
    if ((blank_name == NULL && (blank_name = PyUnicode_InternFromString("_blank")) == NULL) ||
        (free_name == NULL && (free_name = PyUnicode_InternFromString("free")) == NULL))
        return NULL;
    if (pools == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "hold_roots() was not called");
        return NULL;
    }
    PyObject *blank = PyObject_GetAttr(cls, blank_name);
    if (blank == NULL)
        return NULL;
    PyObject *result = NULL;
    if (!PyTuple_Check(blank) || PyTuple_GET_SIZE(blank) != 3 ||
        !PyTuple_Check(PyTuple_GET_ITEM(blank, 2))) {
        PyErr_SetString(PyExc_TypeError, "_blank is (pool key, init, args)");
        goto done;
    }
    PyObject *pool = PyDict_GetItemWithError(pools, PyTuple_GET_ITEM(blank, 0));
    if (pool == NULL) {
        if (!PyErr_Occurred())
            result = Py_NewRef(Py_None); /* no pool yet: the general path makes it */
        goto done;
    }
    PyObject *free = PyObject_GetAttr(pool, free_name);
    PyObject *taken = free == NULL ? NULL : ps_take_py(NULL, free);
    Py_XDECREF(free);
    if (taken == NULL || taken == Py_None) {
        result = taken; /* None: the pool must back or make more slots */
        goto done;
    }
    PyObject *args = PyTuple_GET_ITEM(blank, 2);
    result =
        in_slot(cls, PyTuple_GET_ITEM(taken, 0), PyTuple_GET_ITEM(taken, 1),
                PyTuple_GET_ITEM(blank, 1), &PyTuple_GET_ITEM(args, 0), PyTuple_GET_SIZE(args));
    Py_DECREF(taken);
done:
    Py_DECREF(blank);
    return result;
}

PyObject *ps_root_in_slot_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "root_in_slot(cls, slots, index, init)");
        return NULL;
    }
    return in_slot(args[0], args[1], args[2], args[3], NULL, 0);
}

/* ---- letting go of a new root ------------------------------------------- */

/* leave_new's work: 1 if the root's name was unlinked, 0 if not (or its slot
 * was freed), -1 with an exception. */
static int leave(PyObject *place, uint32_t pid, long user)
{
    if (!PyTuple_Check(place) || PyTuple_GET_SIZE(place) != 3 ||
        !PyObject_TypeCheck(PyTuple_GET_ITEM(place, 0), &ps_SlotsType)) {
        PyErr_SetString(PyExc_TypeError, "a place is (Slots, index, fork epoch)");
        return -1;
    }
    PyObject *slots = PyTuple_GET_ITEM(place, 0), *index = PyTuple_GET_ITEM(place, 1);
    int freed = ps_slots_release(slots, &PyTuple_GET_ITEM(place, 1), 2);
    if (freed != 0)
        return freed < 0 ? -1 : 0; /* this process alone knew it: its slot is free */
    Py_ssize_t size;
    char *data = ps_slots_data(slots, index, &size);
    if (data == NULL)
        return -1;
    if (user < -1 || user >= PS_SLOT_USERS || size < PS_ROOT_INLINE) {
        PyErr_SetString(PyExc_ValueError, "no such user of a root in a slot");
        return -1;
    }
    if (user >= 0) {
        uint32_t seen = pid;
        atomic_compare_exchange_strong((_Atomic uint32_t *)(data + PS_ROOT_USERS + 4 * user), &seen,
                                       0);
    } else
        atomic_fetch_sub((_Atomic uint32_t *)(data + PS_ROOT_OVERFLOW), 1);
    return ps_slots_unlinked(slots, index);
}

PyObject *ps_leave_new_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "leave_new(place, pid, user)");
        return NULL;
    }
    unsigned long pid = PyLong_AsUnsignedLong(args[1]);
    long user = PyLong_AsLong(args[2]);
    if (PyErr_Occurred())
        return NULL;
    if (pid > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "a pid fits 32 bits");
        return NULL;
    }
    int unlinked = leave(args[0], (uint32_t)pid, user);
    return unlinked < 0 ? NULL : PyBool_FromLong(unlinked);
}

int ps_root_gone(PyObject *place)
{
    if (held == NULL)
        return 0;
    PyObject *hold = PyDict_GetItemWithError(held, place);
    if (hold == NULL)
        return PyErr_Occurred() ? -1 : 0; /* let go at exit already */
    Py_INCREF(hold);
    int r = PyDict_DelItem(held, place);
    if (r == 0 && hold == Py_None) {
        int unlinked = leave(place, ps_self_pid(), 0);
        if (unlinked > 0) {
            PyObject *done = PyObject_CallOneArg(drop, place);
            Py_XDECREF(done);
            unlinked = done == NULL ? -1 : 0;
        }
        r = unlinked;
    } else if (r == 0) { /* a forked child's place among its users */
        static PyObject *name;
        PyObject *done = NULL;
        if (name != NULL || (name = PyUnicode_InternFromString("leave")) != NULL)
            done = PyObject_CallMethodNoArgs(hold, name);
        Py_XDECREF(done);
        r = done == NULL ? -1 : 0;
    }
    Py_DECREF(hold);
    return r;
}
