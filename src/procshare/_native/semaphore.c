#include "semaphore.h"

#include <stdatomic.h>
#include <stdint.h>

#include "mapping.h"
#include "mutex.h"
#include "park.h"
#include "platform.h"
#include "wait.h"

typedef struct {
    _Atomic uint32_t value;   /* the futex word */
    _Atomic uint32_t waiters; /* sleepers; release wakes only when non-zero */
    _Atomic uint32_t maximum; /* 0: unbounded */
    uint32_t spare;
} ps_sem_layout;

_Static_assert(sizeof(ps_sem_layout) == PS_SEMAPHORE_SIZE, "semaphore layout size");

typedef struct {
    PS_VIEW_HEAD
    ps_sem_layout *s;
} ps_Semaphore;

static PyObject *Semaphore_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)kwds;
    PyObject *mapping;
    Py_ssize_t offset;
    if (!PyArg_ParseTuple(args, "On:Semaphore", &mapping, &offset))
        return NULL;
    char *p = ps_mapping_ptr(mapping, offset, PS_SEMAPHORE_SIZE, 4);
    if (p == NULL)
        return NULL;
    ps_Semaphore *self = (ps_Semaphore *)ps_view_new(type, mapping);
    if (self == NULL)
        return NULL;
    self->s = (ps_sem_layout *)p;
    return (PyObject *)self;
}

static int sem_take(ps_sem_layout *s)
{
    uint32_t v = atomic_load(&s->value);
    while (v > 0)
        if (atomic_compare_exchange_weak(&s->value, &v, v - 1))
            return 1;
    return 0;
}

/* Take a unit, or park while the value is zero (spinning before the first
 * sleep only). */
static int acquire_step(ps_wait *w, int woke)
{
    ps_sem_layout *s = w->op;
    if (sem_take(s))
        w->result = Py_NewRef(Py_True);
    else if (w->last)
        w->result = Py_NewRef(Py_False);
    else {
        w->park = (ps_park){
            .word = &s->value,
            .sleepers = &s->waiters,
            .spin_ns = woke < 0 ? PS_SPIN_NS : 0,
            .slice_ns = -1,
        };
        return PS_PARK;
    }
    return PS_DONE;
}

static PyObject *Semaphore_acquire(ps_Semaphore *self, PyObject *const *args, Py_ssize_t nargs,
                                   PyObject *kwnames)
{
    int64_t timeout = -1;
    if (nargs != 0 || kwnames != NULL) {
        timeout = ps_parse_acquire(args, nargs, kwnames);
        if (timeout == -2)
            return NULL;
    }
    if (sem_take(self->s))
        Py_RETURN_TRUE; /* a unit was free: no wait to set up */
    ps_wait w;
    ps_wait_init(&w, acquire_step, (PyObject *)self, self->s, timeout);
    return ps_wait_block(&w);
}

/* _acquiring(timeout) -> Waiting: acquire as a generator of parks (True, or
 * False at the deadline). */
static PyObject *Semaphore_acquiring(ps_Semaphore *self, PyObject *arg)
{
    int64_t timeout = ps_timeout_ns(arg);
    if (timeout == -2)
        return NULL;
    ps_wait w;
    ps_wait_init(&w, acquire_step, (PyObject *)self, self->s, timeout);
    return ps_waiting_new(&w);
}

/* release(n=1): add n units; ValueError past a bounded semaphore's maximum. */
static PyObject *Semaphore_release(ps_Semaphore *self, PyObject *const *args, Py_ssize_t nargs)
{
    long n = 1;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "release(n=1)");
        return NULL;
    }
    if (nargs == 1 && (n = PyLong_AsLong(args[0])) == -1 && PyErr_Occurred())
        return NULL;
    if (n < 1) {
        PyErr_SetString(PyExc_ValueError, "n must be one or more");
        return NULL;
    }
    ps_sem_layout *s = self->s;
    uint32_t max = atomic_load(&s->maximum);
    uint32_t limit = max ? max : PS_SEMAPHORE_MAX;
    uint32_t v = atomic_load(&s->value);
    do {
        if (n > (long)limit || v > limit - (uint32_t)n) {
            PyErr_SetString(max ? PyExc_ValueError : PyExc_OverflowError,
                            max ? "semaphore or lock released too many times"
                                : "semaphore value would exceed its maximum");
            return NULL;
        }
    } while (!atomic_compare_exchange_weak(&s->value, &v, v + (uint32_t)n));
    ps_wake_if(&s->value, &s->waiters, (int)(n < INT32_MAX ? n : INT32_MAX));
    Py_RETURN_NONE;
}

static PyObject *Semaphore_enter(ps_Semaphore *self, PyObject *unused)
{
    (void)unused;
    return Semaphore_acquire(self, NULL, 0, NULL);
}

static PyObject *Semaphore_exit(ps_Semaphore *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args;
    (void)nargs;
    return ps_exit_result(Semaphore_release(self, NULL, 0));
}

static PyObject *Semaphore_get_value(ps_Semaphore *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromUnsignedLong(atomic_load(&self->s->value));
}

/* _state() -> (value, sleepers, maximum or 0): read, never waited for. */
static PyObject *Semaphore_state(ps_Semaphore *self, PyObject *unused)
{
    (void)unused;
    ps_sem_layout *s = self->s;
    return Py_BuildValue("(kkk)", (unsigned long)atomic_load(&s->value),
                         (unsigned long)atomic_load(&s->waiters),
                         (unsigned long)atomic_load(&s->maximum));
}

/* init(mapping, offset, value, maximum): lay out a new semaphore (maximum 0:
 * unbounded; the segment is fresh and zero-filled). */
static PyObject *Semaphore_init(PyObject *cls, PyObject *const *args, Py_ssize_t nargs)
{
    (void)cls;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "init(mapping, offset, value, maximum)");
        return NULL;
    }
    Py_ssize_t offset = PyNumber_AsSsize_t(args[1], PyExc_OverflowError);
    unsigned long value = PyLong_AsUnsignedLong(args[2]);
    unsigned long maximum = PyLong_AsUnsignedLong(args[3]);
    if (PyErr_Occurred())
        return NULL;
    if (value > PS_SEMAPHORE_MAX || maximum > PS_SEMAPHORE_MAX) {
        PyErr_SetString(PyExc_ValueError, "semaphore value out of range");
        return NULL;
    }
    ps_sem_layout *s = (ps_sem_layout *)ps_mapping_ptr(args[0], offset, PS_SEMAPHORE_SIZE, 4);
    if (s == NULL)
        return NULL;
    atomic_store(&s->value, (uint32_t)value);
    atomic_store(&s->maximum, (uint32_t)maximum);
    Py_RETURN_NONE;
}

static PyMethodDef Semaphore_methods[] = {
    {"init", (PyCFunction)(void (*)(void))Semaphore_init, METH_FASTCALL | METH_CLASS,
     "init(mapping, offset, value, maximum): lay out a new semaphore (maximum 0: unbounded)."},
    {"acquire", (PyCFunction)(void (*)(void))Semaphore_acquire, METH_FASTCALL | METH_KEYWORDS,
     "acquire(block=True, timeout=None) -> bool"},
    {"release", (PyCFunction)(void (*)(void))Semaphore_release, METH_FASTCALL, "release(n=1)"},
    {"__enter__", (PyCFunction)Semaphore_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))Semaphore_exit, METH_FASTCALL, NULL},
    {"get_value", (PyCFunction)Semaphore_get_value, METH_NOARGS, "get_value() -> int"},
    {"_state", (PyCFunction)Semaphore_state, METH_NOARGS,
     "_state() -> (value, sleeping waiters, maximum or 0), without waiting."},
    {"_acquiring", (PyCFunction)Semaphore_acquiring, METH_O,
     "_acquiring(timeout) -> Waiting: acquire as a generator of parks."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject ps_SemaphoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "procshare._core.Semaphore",
    .tp_basicsize = sizeof(ps_Semaphore),
    .tp_dealloc = ps_view_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Semaphore(mapping, offset): a counting semaphore inside a mapping.",
    .tp_methods = Semaphore_methods,
    .tp_new = Semaphore_new,
};
