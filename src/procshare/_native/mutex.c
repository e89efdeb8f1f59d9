#include "mutex.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "mapping.h"
#include "park.h"
#include "platform.h"
#include "pythread.h"

_Static_assert(sizeof(ps_mutex_layout) == PS_MUTEX_SIZE, "mutex layout size");

#define PID_MASK 0x7fffffffu
#define PROBE_NS 20000000 /* how often a sleeper checks that the owner lives */

typedef struct {
    PS_VIEW_HEAD
    ps_mutex_layout *m;
    int recursive;
    int owner_died; /* the last acquisition took over from a dead owner */
} ps_Mutex;

static PyObject *Mutex_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)kwds;
    PyObject *mapping;
    Py_ssize_t offset;
    int recursive;
    if (!PyArg_ParseTuple(args, "Onp:Mutex", &mapping, &offset, &recursive))
        return NULL;
    char *p = ps_mapping_ptr(mapping, offset, PS_MUTEX_SIZE, 8);
    if (p == NULL)
        return NULL;
    ps_Mutex *self = (ps_Mutex *)ps_view_new(type, mapping);
    if (self == NULL)
        return NULL;
    self->m = (ps_mutex_layout *)p;
    self->recursive = recursive;
    return (PyObject *)self;
}

/* Sleep on the word while it holds owner w, counted as a waiter so that
 * release knows to wake; slice_ns < 0 sleeps without limit. */
static ps_wait_result mutex_sleep(ps_mutex_layout *m, uint32_t w, int64_t slice_ns)
{
    atomic_fetch_add(&m->waiters, 1);
    ps_wait_result r = ps_futex_wait(&m->word, w, slice_ns);
    atomic_fetch_sub(&m->waiters, 1);
    return r;
}

/* Spin up to PS_SPIN_NS (and at most until deadline, if >= 0) for the word to
 * become free; with me != 0 also take it.  Returns 1 when free (or taken). */
static int mutex_spin(ps_mutex_layout *m, uint32_t me, int64_t deadline)
{
    int64_t spin_end = ps_now_ns() + PS_SPIN_NS;
    if (deadline >= 0 && deadline < spin_end)
        spin_end = deadline;
    for (uint32_t i = 1;; i++) {
        if (atomic_load_explicit(&m->word, memory_order_relaxed) == 0) {
            uint32_t w = 0;
            if (me == 0 || atomic_compare_exchange_strong(&m->word, &w, me))
                return 1;
        }
        ps_cpu_relax();
        if ((i & 63) == 0 && ps_now_ns() >= spin_end)
            return 0;
    }
}

/* Take over the word from owner w if that process is dead. */
static int mutex_takeover(ps_mutex_layout *m, uint32_t w, uint32_t me)
{
    return w != 0 && atomic_load(&m->word) == w && !ps_pid_alive(w & PID_MASK) &&
           atomic_compare_exchange_strong(&m->word, &w, me);
}

/* The waiting part of mutex_lock, run without the GIL: spin, then sleep on the
 * word in slices, probing the owner's liveness after each.  Returns 1 when
 * acquired, 0 at the deadline (< 0: none), 2 when a signal interrupted. */
static int mutex_lock_nogil(ps_mutex_layout *m, uint32_t me, int64_t deadline, int *died)
{
    if (mutex_spin(m, me, deadline))
        return 1;
    for (;;) {
        uint32_t w = 0;
        if (atomic_compare_exchange_strong(&m->word, &w, me))
            return 1;
        int64_t slice = PROBE_NS;
        if (deadline >= 0) {
            int64_t left = deadline - ps_now_ns();
            if (left <= 0)
                return 0;
            if (left < slice)
                slice = left;
        }
        ps_wait_result r = mutex_sleep(m, w, slice);
        if (r == PS_WAIT_INTR)
            return 2;
        if (r == PS_WAIT_TIMEOUT && mutex_takeover(m, w, me)) {
            *died = 1;
            return 1;
        }
    }
}

/* Take the word for this process.  timeout_ns < 0 waits without limit.
 * Returns 1 when acquired, 0 on timeout, -1 with an exception (a signal
 * handler raised).  *died is set when the previous owner was dead. */
int ps_mutex_lock(ps_mutex_layout *m, int64_t timeout_ns, int *died)
{
    uint32_t me = ps_self_pid();
    uint32_t w = 0;
    *died = 0;
    if (atomic_compare_exchange_strong(&m->word, &w, me))
        return 1;
    if (timeout_ns == 0)
        return 0;
    int64_t deadline = timeout_ns < 0 ? -1 : ps_now_ns() + timeout_ns;
    for (;;) {
        int r;
        Py_BEGIN_ALLOW_THREADS
        r = mutex_lock_nogil(m, me, deadline, died);
        Py_END_ALLOW_THREADS
        if (r != 2)
            return r;
        if (PyErr_CheckSignals() < 0)
            return -1;
    }
}

/* Free the word; returns 0 if it was already free (and nothing changed). */
int ps_mutex_unlock(ps_mutex_layout *m)
{
    /* Sequentially consistent exchange, then load: a sleeper either is
     * counted here or finds the word changed when the futex re-checks it. */
    if (atomic_exchange(&m->word, 0) == 0)
        return 0;
    if (atomic_load(&m->waiters) != 0)
        ps_futex_wake(&m->word, 1);
    return 1;
}

/* Record a fresh acquisition by this thread with recursion count. */
static void took(ps_Mutex *self, int died, uint32_t count)
{
    self->owner_died = died;
    if (self->recursive) {
        /* Ordered by the lock word itself: relaxed is enough. */
        atomic_store_explicit(&self->m->thread, (uint64_t)PyThread_get_thread_ident(),
                              memory_order_relaxed);
        atomic_store_explicit(&self->m->count, count, memory_order_relaxed);
    }
}

static int owned_by_me(ps_mutex_layout *m)
{
    return (atomic_load(&m->word) & PID_MASK) == ps_self_pid() &&
           atomic_load_explicit(&m->thread, memory_order_relaxed) ==
               (uint64_t)PyThread_get_thread_ident();
}

/* Parse (block=True, timeout=None), also accepting threading's "blocking"
 * and timeout=-1.  As in multiprocessing, a timeout is ignored when block is
 * false.  Returns the timeout in ns (-1: none), or -2 on error. */
int64_t ps_parse_acquire(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *block = nargs > 0 ? args[0] : NULL;
    PyObject *timeout = nargs > 1 ? args[1] : NULL;
    if (nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "acquire(block=True, timeout=None)");
        return -2;
    }
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i);
        PyObject **slot = NULL;
        if (PyUnicode_CompareWithASCIIString(key, "block") == 0 ||
            PyUnicode_CompareWithASCIIString(key, "blocking") == 0)
            slot = &block;
        else if (PyUnicode_CompareWithASCIIString(key, "timeout") == 0)
            slot = &timeout;
        if (slot == NULL || *slot != NULL) {
            PyErr_Format(PyExc_TypeError, "acquire() got an unexpected or repeated argument %R", key);
            return -2;
        }
        *slot = args[nargs + i];
    }
    int blocking = 1;
    if (block != NULL && (blocking = PyObject_IsTrue(block)) < 0)
        return -2;
    int64_t ns = -1;
    if (timeout != NULL && timeout != Py_None) {
        double t = PyFloat_AsDouble(timeout);
        if (t == -1.0 && PyErr_Occurred())
            return -2;
        if (t != -1.0)
            ns = ps_timeout_ns(timeout);
        if (ns == -2)
            return -2;
    }
    return blocking ? ns : 0;
}

static PyObject *Mutex_acquire(ps_Mutex *self, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames)
{
    int64_t timeout = -1;
    if (nargs != 0 || kwnames != NULL) {
        timeout = ps_parse_acquire(args, nargs, kwnames);
        if (timeout == -2)
            return NULL;
    }
    if (self->recursive && owned_by_me(self->m)) {
        uint32_t c = atomic_load(&self->m->count);
        if (c == UINT32_MAX) {
            PyErr_SetString(PyExc_OverflowError, "recursion count of the lock is too large");
            return NULL;
        }
        atomic_store(&self->m->count, c + 1);
        Py_RETURN_TRUE;
    }
    int died;
    int r = ps_mutex_lock(self->m, timeout, &died);
    if (r < 0)
        return NULL;
    if (r == 0)
        Py_RETURN_FALSE;
    took(self, died, 1);
    Py_RETURN_TRUE;
}

static PyObject *Mutex_release(ps_Mutex *self, PyObject *unused)
{
    (void)unused;
    ps_mutex_layout *m = self->m;
    if (self->recursive) {
        if (!owned_by_me(m)) {
            PyErr_SetString(PyExc_AssertionError,
                            "attempt to release recursive lock not owned by thread");
            return NULL;
        }
        uint32_t c = atomic_load(&m->count);
        if (c > 1) {
            atomic_store(&m->count, c - 1);
            Py_RETURN_NONE;
        }
        atomic_store_explicit(&m->count, 0, memory_order_relaxed);
        atomic_store_explicit(&m->thread, 0, memory_order_relaxed);
    }
    if (!ps_mutex_unlock(m)) {
        PyErr_SetString(PyExc_ValueError, "lock released while not locked");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* _release_save() -> int: release completely (all recursion levels), returning
 * what _acquire_restore needs; for Condition.wait. */
static PyObject *Mutex_release_save(ps_Mutex *self, PyObject *unused)
{
    (void)unused;
    ps_mutex_layout *m = self->m;
    uint32_t count = 1;
    if (self->recursive) {
        if (!owned_by_me(m)) {
            PyErr_SetString(PyExc_AssertionError, "cannot release un-acquired lock");
            return NULL;
        }
        count = atomic_load(&m->count);
        atomic_store(&m->count, 0);
        atomic_store(&m->thread, 0);
    }
    else if (atomic_load(&m->word) == 0) {
        PyErr_SetString(PyExc_ValueError, "lock released while not locked");
        return NULL;
    }
    (void)ps_mutex_unlock(m);
    return PyLong_FromUnsignedLong(count);
}

static int parse_count(PyObject *arg, uint32_t *count)
{
    unsigned long c = PyLong_AsUnsignedLong(arg);
    if (c == (unsigned long)-1 && PyErr_Occurred())
        return -1;
    if (c == 0 || c > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "invalid saved lock state");
        return -1;
    }
    *count = (uint32_t)c;
    return 0;
}

/* _acquire_restore(count, block=True) -> bool: acquire afresh (blocking or
 * not), then set the recursion count saved by _release_save. */
static PyObject *Mutex_acquire_restore(ps_Mutex *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint32_t count;
    int block = 1;
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "_acquire_restore(count, block=True)");
        return NULL;
    }
    if (parse_count(args[0], &count) < 0 || (nargs == 2 && (block = PyObject_IsTrue(args[1])) < 0))
        return NULL;
    int died;
    int r = ps_mutex_lock(self->m, block ? -1 : 0, &died);
    if (r < 0)
        return NULL;
    if (r == 1)
        took(self, died, count);
    return PyBool_FromLong(r);
}

/* _park(timeout) -> bool: wait (without taking the lock) until it may be free;
 * False when timeout passed.  Safe from any thread: asyncio waits run it in a
 * worker thread, then try acquire(False) on the event loop's thread. */
static PyObject *Mutex_park(ps_Mutex *self, PyObject *arg)
{
    int64_t timeout = ps_timeout_ns(arg);
    if (timeout == -2)
        return NULL;
    ps_mutex_layout *m = self->m;
    ps_wait_result r = PS_WAIT_WOKEN;
    Py_BEGIN_ALLOW_THREADS
    int64_t deadline = timeout < 0 ? -1 : ps_now_ns() + timeout;
    if (!mutex_spin(m, 0, deadline)) {
        uint32_t w = atomic_load(&m->word);
        int64_t left = -1;
        if (deadline >= 0 && (left = deadline - ps_now_ns()) <= 0)
            r = PS_WAIT_TIMEOUT;
        else if (w != 0)
            r = mutex_sleep(m, w, left);
    }
    Py_END_ALLOW_THREADS
    if (r == PS_WAIT_INTR && PyErr_CheckSignals() < 0)
        return NULL;
    return PyBool_FromLong(r != PS_WAIT_TIMEOUT);
}

/* _takeover_if_dead(count=1) -> bool: take the lock if its holder is dead (then
 * owner_died is set); the non-blocking half of robust waiting for asyncio. */
static PyObject *Mutex_takeover_if_dead(ps_Mutex *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint32_t count = 1;
    if (nargs > 1 || (nargs == 1 && parse_count(args[0], &count) < 0)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "_takeover_if_dead(count=1)");
        return NULL;
    }
    if (!mutex_takeover(self->m, atomic_load(&self->m->word), ps_self_pid()))
        Py_RETURN_FALSE;
    took(self, 1, count);
    Py_RETURN_TRUE;
}

static PyObject *Mutex_enter(ps_Mutex *self, PyObject *unused)
{
    (void)unused;
    return Mutex_acquire(self, NULL, 0, NULL);
}

PyObject *ps_exit_result(PyObject *released)
{
    if (released == NULL)
        return NULL;
    Py_DECREF(released);
    Py_RETURN_FALSE;
}

static PyObject *Mutex_exit(ps_Mutex *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args;
    (void)nargs;
    return ps_exit_result(Mutex_release(self, NULL));
}

static PyObject *Mutex_locked(ps_Mutex *self, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(atomic_load(&self->m->word) != 0);
}

static PyObject *Mutex_is_owned(ps_Mutex *self, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(self->recursive ? owned_by_me(self->m)
                                           : (atomic_load(&self->m->word) & PID_MASK) ==
                                                 ps_self_pid());
}

static PyMethodDef Mutex_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))Mutex_acquire, METH_FASTCALL | METH_KEYWORDS,
     "acquire(block=True, timeout=None) -> bool"},
    {"release", (PyCFunction)Mutex_release, METH_NOARGS, "release()"},
    {"__enter__", (PyCFunction)Mutex_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))Mutex_exit, METH_FASTCALL, NULL},
    {"locked", (PyCFunction)Mutex_locked, METH_NOARGS, "locked() -> bool: held by anyone."},
    {"_release_save", (PyCFunction)Mutex_release_save, METH_NOARGS, NULL},
    {"_acquire_restore", (PyCFunction)(void (*)(void))Mutex_acquire_restore, METH_FASTCALL, NULL},
    {"_park", (PyCFunction)Mutex_park, METH_O, NULL},
    {"_takeover_if_dead", (PyCFunction)(void (*)(void))Mutex_takeover_if_dead, METH_FASTCALL,
     NULL},
    {"_is_owned", (PyCFunction)Mutex_is_owned, METH_NOARGS,
     "_is_owned() -> bool: held by this thread (recursive) or this process."},
    {NULL, NULL, 0, NULL},
};

static PyObject *Mutex_get_owner_died(ps_Mutex *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(self->owner_died);
}

static PyGetSetDef Mutex_getset[] = {
    {"owner_died", (getter)Mutex_get_owner_died, NULL,
     "True if this object's last acquisition took the lock over from a process that died "
     "holding it (the data it protected may be half-updated).",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject ps_MutexType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "procshare._core.Mutex",
    .tp_basicsize = sizeof(ps_Mutex),
    .tp_dealloc = ps_view_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Mutex(mapping, offset, recursive): a robust lock word inside a mapping.",
    .tp_methods = Mutex_methods,
    .tp_getset = Mutex_getset,
    .tp_new = Mutex_new,
};
