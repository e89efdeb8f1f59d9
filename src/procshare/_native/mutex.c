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
_Static_assert(PS_MUTEX_SIZE <= PS_LOCK_SPACE, "a lock fits its space");

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

/* Spin up to PS_SPIN_NS (and at most until deadline, if >= 0) for the word to
 * become free, and take it.  Returns 1 when taken. */
static int mutex_spin(ps_mutex_layout *m, uint32_t me, int64_t deadline)
{
    int64_t spin_end = ps_now_ns() + PS_SPIN_NS;
    if (deadline >= 0 && deadline < spin_end)
        spin_end = deadline;
    for (uint32_t i = 1;; i++) {
        if (atomic_load_explicit(&m->word, memory_order_relaxed) == 0) {
            uint32_t w = 0;
            if (atomic_compare_exchange_strong(&m->word, &w, me))
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

/* One slice of waiting, run without the GIL: try to take the word, else sleep
 * on it for at most PS_PROBE_NS (or until deadline, < 0: none), then take it
 * over if its owner died.  Returns 1 when acquired, 0 at the deadline, 2 when
 * the caller should run signal handlers and call again. */
static int mutex_slice(ps_mutex_layout *m, uint32_t me, int64_t deadline, int *died)
{
    uint32_t w = 0;
    if (atomic_compare_exchange_strong(&m->word, &w, me))
        return 1;
    int64_t slice = ps_slice_until(deadline, PS_PROBE_NS);
    if (slice == 0)
        return 0;
    if (ps_sleep(&m->word, w, slice, &m->waiters) == PS_WAIT_TIMEOUT && mutex_takeover(m, w, me)) {
        *died = 1;
        return 1;
    }
    return 2;
}

/* Take the word for this process.  timeout_ns < 0 waits without limit; a
 * wait that reaches its deadline tries once more before it gives up.
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
    int r;
    Py_BEGIN_ALLOW_THREADS
        r = mutex_spin(m, me, deadline);
    Py_END_ALLOW_THREADS
    while (r == 0 || r == 2) {
        if (r == 2 && PyErr_CheckSignals() < 0)
            return -1;
        Py_BEGIN_ALLOW_THREADS
            r = mutex_slice(m, me, deadline, died);
        Py_END_ALLOW_THREADS
        if (r == 0)
            return 0;
    }
    return 1;
}

/* Free the word; returns 0 if it was already free (and nothing changed). */
int ps_mutex_unlock(ps_mutex_layout *m)
{
    /* Sequentially consistent exchange, then load: a sleeper either is
     * counted here or finds the word changed when the futex re-checks it. */
    if (atomic_exchange(&m->word, 0) == 0)
        return 0;
    ps_wake_if(&m->word, &m->waiters, 1);
    return 1;
}

/* Who owns a recursive mutex inside this process: the thread, or the asyncio
 * task that acquired it with acquire_async / async with (tasks of one event
 * loop share its thread, yet must exclude each other). */
static uint64_t thread_ident(void)
{
    return (uint64_t)PyThread_get_thread_ident();
}

/* procshare._sync.parking.task_ident(): the running task's ident, 0 if none. */
static uint64_t task_ident(void)
{
    static PyObject *fn;
    if (ps_python_attr("procshare._sync.parking", "task_ident", &fn) == NULL) {
        PyErr_Clear();
        return 0;
    }
    PyObject *r = PyObject_CallNoArgs(fn);
    uint64_t ident = r == NULL ? 0 : PyLong_AsUnsignedLongLong(r);
    Py_XDECREF(r);
    if (PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return ident;
}

/* Record a fresh acquisition by owner (a thread or task ident) with recursion count. */
static void took(ps_Mutex *self, int died, uint32_t count, uint64_t owner)
{
    self->owner_died = died;
    if (self->recursive) {
        /* Ordered by the lock word itself: relaxed is enough. */
        atomic_store_explicit(&self->m->thread, owner, memory_order_relaxed);
        atomic_store_explicit(&self->m->count, count, memory_order_relaxed);
    }
}

/* Held by this process and by owner. */
static int owned_by(ps_mutex_layout *m, uint64_t owner)
{
    return (atomic_load(&m->word) & PID_MASK) == ps_self_pid() &&
           atomic_load_explicit(&m->thread, memory_order_relaxed) == owner;
}

/* Held by this thread, or by the asyncio task running in it. */
static int owned_by_me(ps_mutex_layout *m)
{
    if ((atomic_load(&m->word) & PID_MASK) != ps_self_pid())
        return 0;
    uint64_t owner = atomic_load_explicit(&m->thread, memory_order_relaxed);
    return owner == thread_ident() || (owner != 0 && owner == task_ident());
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
            PyErr_Format(PyExc_TypeError, "acquire() got an unexpected or repeated argument %R",
                         key);
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
    took(self, died, 1, thread_ident());
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

/* _release_save() -> (count, owner): release completely (all recursion
 * levels), returning what _try_acquire_as needs to restore; for Condition.wait. */
static PyObject *Mutex_release_save(ps_Mutex *self, PyObject *unused)
{
    (void)unused;
    ps_mutex_layout *m = self->m;
    uint32_t count = 1;
    uint64_t owner = 0;
    if (self->recursive) {
        if (!owned_by_me(m)) {
            PyErr_SetString(PyExc_AssertionError, "cannot release un-acquired lock");
            return NULL;
        }
        count = atomic_load(&m->count);
        owner = atomic_load(&m->thread);
        atomic_store(&m->count, 0);
        atomic_store(&m->thread, 0);
    } else if (atomic_load(&m->word) == 0) {
        PyErr_SetString(PyExc_ValueError, "lock released while not locked");
        return NULL;
    }
    (void)ps_mutex_unlock(m);
    return Py_BuildValue("(kK)", (unsigned long)count, (unsigned long long)owner);
}

/* Parse (owner, count): owner 0 means the calling thread. */
static int parse_owner_count(PyObject *const *args, Py_ssize_t nargs, uint64_t *owner,
                             uint32_t *count)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "expected (owner, count)");
        return -1;
    }
    unsigned long long o = PyLong_AsUnsignedLongLong(args[0]);
    unsigned long c = PyLong_AsUnsignedLong(args[1]);
    if (PyErr_Occurred())
        return -1;
    if (c == 0 || c > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "invalid saved lock state");
        return -1;
    }
    *owner = o ? (uint64_t)o : thread_ident();
    *count = (uint32_t)c;
    return 0;
}

/* _try_acquire_as(owner, count) -> bool: without waiting, re-enter (recursive,
 * already held by owner: the count grows by count) or take the lock for owner
 * (a thread or task ident; 0: this thread) with recursion count. */
static PyObject *Mutex_try_acquire_as(ps_Mutex *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t owner;
    uint32_t count;
    if (parse_owner_count(args, nargs, &owner, &count) < 0)
        return NULL;
    ps_mutex_layout *m = self->m;
    if (self->recursive && owned_by(m, owner)) {
        uint32_t c = atomic_load(&m->count);
        if (c > UINT32_MAX - count) {
            PyErr_SetString(PyExc_OverflowError, "recursion count of the lock is too large");
            return NULL;
        }
        atomic_store(&m->count, c + count);
        Py_RETURN_TRUE;
    }
    uint32_t w = 0;
    if (!atomic_compare_exchange_strong(&m->word, &w, ps_self_pid()))
        Py_RETURN_FALSE;
    took(self, 0, count, owner);
    Py_RETURN_TRUE;
}

/* _park(timeout) -> bool: wait (without taking the lock) until it may be free;
 * False when timeout passed.  Safe from any thread: asyncio waits run it in a
 * worker thread, then try the lock on the event loop's thread. */
static PyObject *Mutex_park(ps_Mutex *self, PyObject *arg)
{
    int64_t timeout = ps_timeout_ns(arg);
    if (timeout == -2)
        return NULL;
    ps_mutex_layout *m = self->m;
    uint32_t w = atomic_load(&m->word);
    if (w == 0)
        Py_RETURN_TRUE;
    int r = ps_park_checked(&m->word, w, timeout, PS_SPIN_NS, &m->waiters);
    return r < 0 ? NULL : PyBool_FromLong(r);
}

/* _unpark(): pass a wake-up on to one sleeper (one that an abandoned wait took). */
static PyObject *Mutex_unpark(ps_Mutex *self, PyObject *unused)
{
    (void)unused;
    ps_wake_if(&self->m->word, &self->m->waiters, 1);
    Py_RETURN_NONE;
}

/* _takeover_if_dead(owner, count) -> bool: take the lock for owner if its
 * holder is dead (then owner_died is set); the non-blocking half of robust
 * waiting for asyncio. */
static PyObject *Mutex_takeover_if_dead(ps_Mutex *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t owner;
    uint32_t count;
    if (parse_owner_count(args, nargs, &owner, &count) < 0)
        return NULL;
    if (!mutex_takeover(self->m, atomic_load(&self->m->word), ps_self_pid()))
        Py_RETURN_FALSE;
    took(self, 1, count, owner);
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
    return PyBool_FromLong(self->recursive
                               ? owned_by_me(self->m)
                               : (atomic_load(&self->m->word) & PID_MASK) == ps_self_pid());
}

static PyMethodDef Mutex_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))Mutex_acquire, METH_FASTCALL | METH_KEYWORDS,
     "acquire(block=True, timeout=None) -> bool"},
    {"release", (PyCFunction)Mutex_release, METH_NOARGS, "release()"},
    {"__enter__", (PyCFunction)Mutex_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))Mutex_exit, METH_FASTCALL, NULL},
    {"locked", (PyCFunction)Mutex_locked, METH_NOARGS, "locked() -> bool: held by anyone."},
    {"_release_save", (PyCFunction)Mutex_release_save, METH_NOARGS, NULL},
    {"_try_acquire_as", (PyCFunction)(void (*)(void))Mutex_try_acquire_as, METH_FASTCALL, NULL},
    {"_park", (PyCFunction)Mutex_park, METH_O, NULL},
    {"_unpark", (PyCFunction)Mutex_unpark, METH_NOARGS, NULL},
    {"_takeover_if_dead", (PyCFunction)(void (*)(void))Mutex_takeover_if_dead, METH_FASTCALL, NULL},
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
