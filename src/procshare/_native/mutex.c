#include "mutex.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "mapping.h"
#include "park.h"
#include "platform.h"
#include "pythread.h"
#include "wait.h"

_Static_assert(sizeof(ps_mutex_layout) == PS_MUTEX_SIZE, "mutex layout size");

#define PID_MASK 0x7fffffffu
_Static_assert(PS_MUTEX_SIZE <= PS_LOCK_SPACE, "a lock fits its space");

typedef struct ps_Mutex {
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

/* Take over the word from owner w if that process is dead. */
static int mutex_takeover(ps_mutex_layout *m, uint32_t w, uint32_t me)
{
    return w != 0 && atomic_load(&m->word) == w && !ps_pid_alive(w & PID_MASK) &&
           atomic_compare_exchange_strong(&m->word, &w, me);
}

int ps_mutex_try(ps_mutex_layout *m, int woke, int *died, ps_park *park)
{
    uint32_t me = ps_self_pid();
    uint32_t w = 0;
    if (atomic_compare_exchange_strong(&m->word, &w, me))
        return 1;
    if (woke == 0 && mutex_takeover(m, w, me)) {
        *died = 1;
        return 1;
    }
    /* Spin only before the first sleep: after a wake-up that another waiter
     * won, sleeping at once is cheaper for everyone. */
    *park = (ps_park){
        .word = &m->word,
        .seen = w,
        .sleepers = &m->waiters,
        .spin_ns = woke < 0 ? PS_SPIN_NS : 0,
        .slice_ns = PS_PROBE_NS,
    };
    return 0;
}

/* A wait for the word: by a Mutex object (self, NULL for a bare word such as
 * a ring's), for owner with recursion count. */
typedef struct {
    ps_mutex_layout *m;
    struct ps_Mutex *self;
    uint64_t owner;
    uint32_t count;
    int died;
} lock_op;

static void took(lock_op *op);
static int owned_by(ps_mutex_layout *m, uint64_t owner);
static PyObject *reenter(ps_mutex_layout *m, uint32_t count);

/* Take the word for op's owner; a recursive Mutex already held by that owner
 * is re-entered at the first try. */
static int lock_step(ps_wait *w, int woke)
{
    lock_op *op = w->op;
    if (woke < 0 && op->self != NULL && op->self->recursive && owned_by(op->m, op->owner))
        return (w->result = reenter(op->m, op->count)) == NULL ? -1 : PS_DONE;
    if (ps_mutex_try(op->m, woke, &op->died, &w->park)) {
        took(op);
        w->result = Py_NewRef(Py_True);
    } else if (w->last) {
        w->result = Py_NewRef(Py_False);
    } else {
        return PS_PARK;
    }
    return PS_DONE;
}

int ps_mutex_lock(ps_mutex_layout *m, int64_t timeout_ns, int *died)
{
    lock_op op = {.m = m};
    ps_wait w;
    ps_wait_init(&w, lock_step, NULL, &op, timeout_ns);
    PyObject *r = ps_wait_block(&w);
    *died = op.died;
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return r == Py_True;
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

/* Record a fresh acquisition: owner_died, and for a recursive mutex the
 * owner (a thread or task ident) and recursion count. */
static void took(lock_op *op)
{
    ps_Mutex *self = op->self;
    if (self == NULL)
        return;
    self->owner_died = op->died;
    if (self->recursive) {
        /* Ordered by the lock word itself: relaxed is enough. */
        atomic_store_explicit(&self->m->thread, op->owner, memory_order_relaxed);
        atomic_store_explicit(&self->m->count, op->count, memory_order_relaxed);
    }
}

/* Enter a recursive mutex already held by its owner count more times. */
static PyObject *reenter(ps_mutex_layout *m, uint32_t count)
{
    uint32_t c = atomic_load(&m->count);
    if (c > UINT32_MAX - count) {
        PyErr_SetString(PyExc_OverflowError, "recursion count of the lock is too large");
        return NULL;
    }
    atomic_store(&m->count, c + count);
    Py_RETURN_TRUE;
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

/* The wait of acquire and _acquiring: re-enter when owner holds a recursive
 * mutex already, else take the word for owner with recursion count. */
static void lock_wait(ps_wait *w, lock_op *op, ps_Mutex *self, uint64_t owner, uint32_t count,
                      int64_t timeout)
{
    *op = (lock_op){.m = self->m, .self = self, .owner = owner, .count = count};
    ps_wait_init(w, lock_step, (PyObject *)self, op, timeout);
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
    if (self->recursive && owned_by_me(self->m))
        return reenter(self->m, 1);
    lock_op op = {.m = self->m, .self = self, .owner = thread_ident(), .count = 1};
    uint32_t free_word = 0;
    if (atomic_compare_exchange_strong(&self->m->word, &free_word, ps_self_pid())) {
        took(&op); /* uncontended: nothing to wait for */
        Py_RETURN_TRUE;
    }
    ps_wait w;
    lock_wait(&w, &op, self, op.owner, 1, timeout);
    return ps_wait_block(&w);
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
PyObject *ps_mutex_enter(PyObject *mutex)
{
    return Mutex_acquire((ps_Mutex *)mutex, NULL, 0, NULL);
}

int ps_mutex_exit(PyObject *mutex)
{
    PyObject *r = Mutex_release((ps_Mutex *)mutex, NULL);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

int ps_mutex_died(PyObject *mutex)
{
    return ((ps_Mutex *)mutex)->owner_died;
}

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

static void lock_op_free(void *op)
{
    PyMem_Free(op);
}

/* _acquiring(timeout, owner, count) -> Waiting: acquire as a generator of
 * parks, for owner (a task or thread ident; 0: this thread) with recursion
 * count, or restoring what _release_save returned.  Returns True, or False
 * at the deadline. */
static PyObject *Mutex_acquiring(ps_Mutex *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "_acquiring(timeout, owner, count)");
        return NULL;
    }
    int64_t timeout = ps_timeout_ns(args[0]);
    unsigned long long owner = PyLong_AsUnsignedLongLong(args[1]);
    unsigned long count = PyLong_AsUnsignedLong(args[2]);
    if (timeout == -2 || PyErr_Occurred())
        return NULL;
    if (count == 0 || count > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "invalid saved lock state");
        return NULL;
    }
    if (owner == 0)
        owner = thread_ident();
    lock_op *op = PyMem_Malloc(sizeof *op);
    if (op == NULL)
        return PyErr_NoMemory();
    ps_wait w;
    lock_wait(&w, op, self, owner, (uint32_t)count, timeout);
    w.op_free = lock_op_free;
    return ps_waiting_new(&w);
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

/* _state() -> (owner pid or 0, sleepers, recursion count): read, never waited for. */
static PyObject *Mutex_state(ps_Mutex *self, PyObject *unused)
{
    (void)unused;
    ps_mutex_layout *m = self->m;
    return Py_BuildValue("(kkk)", (unsigned long)atomic_load(&m->word),
                         (unsigned long)atomic_load(&m->waiters),
                         (unsigned long)atomic_load(&m->count));
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
    {"_acquiring", (PyCFunction)(void (*)(void))Mutex_acquiring, METH_FASTCALL,
     "_acquiring(timeout, owner, count) -> Waiting: acquire as a generator of parks."},
    {"_state", (PyCFunction)Mutex_state, METH_NOARGS,
     "_state() -> (owner pid or 0, sleeping waiters, recursion count), without waiting."},
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
