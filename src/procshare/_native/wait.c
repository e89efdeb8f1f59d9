#include "wait.h"

#include "mapping.h"
#include "park.h"
#include "platform.h"

void ps_wait_init(ps_wait *w, ps_step step, PyObject *target, void *op, int64_t timeout_ns)
{
    *w = (ps_wait){
        .step = step,
        .target = target,
        .op = op,
        .deadline = timeout_ns < 0 ? -1 : ps_now_ns() + timeout_ns,
        .last = timeout_ns == 0,
    };
}

static void wait_release_op(ps_wait *w)
{
    if (w->op_free != NULL && w->op != NULL)
        w->op_free(w->op);
    w->op = NULL;
}

/* The loop body both drivers share: try; when the step asks to park, say for
 * how long (*park_ns: to the deadline, at most the park's slice, < 0: no
 * limit), and once the deadline has passed make the final try. */
static int wait_next(ps_wait *w, int woke, int64_t *park_ns)
{
    for (;;) {
        int r = w->step(w, woke);
        if (r != PS_PARK)
            return r;
        if (w->last) {
            PyErr_SetString(PyExc_SystemError, "procshare: a final try asked to park");
            return -1;
        }
        int64_t slice = w->park.slice_ns;
        if (w->deadline < 0) {
            *park_ns = slice;
            return PS_PARK;
        }
        int64_t left = w->deadline - ps_now_ns();
        if (left > 0) {
            *park_ns = slice >= 0 && slice < left ? slice : left;
            return PS_PARK;
        }
        w->last = 1;
        woke = 0;
    }
}

/* Park as p says for at most ns (< 0: no limit), in this thread.  1 woken or
 * changed, 0 timed out, -1 with an exception (a signal handler raised). */
static int park_run(const ps_park *p, int64_t ns)
{
    if (p->count_spinning)
        atomic_fetch_add(p->sleepers, 1);
    int r =
        ps_park_checked(p->word, p->seen, ns, p->spin_ns, p->count_spinning ? NULL : p->sleepers);
    if (p->count_spinning)
        atomic_fetch_sub(p->sleepers, 1);
    return r;
}

PyObject *ps_wait_block(ps_wait *w)
{
    int woke = -1;
    int64_t ns = 0;
    int r;
    while ((r = wait_next(w, woke, &ns)) == PS_PARK)
        if ((woke = park_run(&w->park, ns)) < 0)
            break;
    wait_release_op(w);
    return r == PS_DONE ? w->result : NULL;
}

/* ---- Waiting: the same wait, driven from Python ----------------------- */

typedef struct {
    PyObject_HEAD
    ps_wait w;
    int started, finished;
    int64_t park_ns; /* the current park's time limit */
} ps_Waiting;

PyObject *ps_waiting_new(const ps_wait *w)
{
    ps_Waiting *self = PyObject_New(ps_Waiting, &ps_WaitingType);
    if (self == NULL) {
        ps_wait copy = *w;
        wait_release_op(&copy);
        return NULL;
    }
    self->w = *w;
    Py_INCREF(self->w.target);
    self->started = self->finished = 0;
    self->park_ns = 0;
    return (PyObject *)self;
}

static void Waiting_dealloc(ps_Waiting *self)
{
    wait_release_op(&self->w);
    Py_XDECREF(self->w.target);
    PyObject_Free(self);
}

/* Raise StopIteration carrying value (a tuple value survives intact). */
static PyObject *stop_with(PyObject *value)
{
    PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, value);
    if (stop != NULL) {
        PyErr_SetObject(PyExc_StopIteration, stop);
        Py_DECREF(stop);
    }
    return NULL;
}

/* Run the step; yield (self, timeout in seconds or None) to park, or finish. */
static PyObject *Waiting_step(ps_Waiting *self, int woke)
{
    if (self->finished) {
        PyErr_SetNone(PyExc_StopIteration);
        return NULL;
    }
    self->started = 1;
    int r = wait_next(&self->w, woke, &self->park_ns);
    if (r == PS_PARK) {
        if (self->park_ns < 0)
            return Py_BuildValue("(OO)", self, Py_None);
        return Py_BuildValue("(Od)", self, (double)self->park_ns / 1e9);
    }
    self->finished = 1;
    wait_release_op(&self->w);
    if (r < 0)
        return NULL;
    PyObject *result = self->w.result;
    self->w.result = NULL;
    stop_with(result);
    Py_DECREF(result);
    return NULL;
}

static PyObject *Waiting_next(ps_Waiting *self)
{
    return Waiting_step(self, self->started ? 1 : -1);
}

/* send(woke): what the park returned (the first send must be None). */
static PyObject *Waiting_send(ps_Waiting *self, PyObject *woke)
{
    if (!self->started) {
        if (woke != Py_None) {
            PyErr_SetString(PyExc_TypeError, "can't send non-None value to a just-started wait");
            return NULL;
        }
        return Waiting_step(self, -1);
    }
    int b = PyObject_IsTrue(woke);
    return b < 0 ? NULL : Waiting_step(self, b);
}

/* throw(exc): end the wait (nothing is held between tries) and raise exc. */
static PyObject *Waiting_throw(ps_Waiting *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "throw(exc)");
        return NULL;
    }
    self->finished = 1;
    wait_release_op(&self->w);
    PyObject *exc = args[0];
    if (PyExceptionInstance_Check(exc))
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    else if (PyExceptionClass_Check(exc))
        PyErr_SetObject(exc, nargs > 1 ? args[1] : NULL);
    else
        PyErr_SetString(PyExc_TypeError, "exceptions must derive from BaseException");
    return NULL;
}

static PyObject *Waiting_close(ps_Waiting *self, PyObject *unused)
{
    (void)unused;
    self->finished = 1;
    wait_release_op(&self->w);
    Py_RETURN_NONE;
}

/* wait(timeout) -> bool: park (from any thread) as the last step asked, for
 * at most timeout seconds; True when woken or the word changed. */
static PyObject *Waiting_wait(ps_Waiting *self, PyObject *arg)
{
    int64_t ns = ps_timeout_ns(arg);
    if (ns == -2)
        return NULL;
    if (self->park_ns >= 0 && (ns < 0 || self->park_ns < ns))
        ns = self->park_ns;
    ps_park p = self->w.park; /* a copy: the thread that steps may move on */
    if (p.word == NULL)
        Py_RETURN_TRUE;
    int r = park_run(&p, ns);
    return r < 0 ? NULL : PyBool_FromLong(r);
}

/* wake(): pass a wake-up of the parked word on to one other sleeper (one
 * that a cancelled asyncio wait received and cannot use). */
static PyObject *Waiting_wake(ps_Waiting *self, PyObject *unused)
{
    (void)unused;
    ps_park p = self->w.park;
    if (p.word != NULL) {
        if (p.sleepers != NULL)
            ps_wake_if(p.word, p.sleepers, 1);
        else
            ps_futex_wake(p.word, 1);
    }
    Py_RETURN_NONE;
}

static PyMethodDef Waiting_methods[] = {
    {"send", (PyCFunction)Waiting_send, METH_O, "send(woke): continue after a park."},
    {"throw", (PyCFunction)(void (*)(void))Waiting_throw, METH_FASTCALL,
     "throw(exc): end the wait, raising exc."},
    {"close", (PyCFunction)Waiting_close, METH_NOARGS, "close(): end the wait."},
    {"wait", (PyCFunction)Waiting_wait, METH_O,
     "wait(timeout) -> bool: park as the last step asked (any thread)."},
    {"wake", (PyCFunction)Waiting_wake, METH_NOARGS,
     "wake(): pass a wake-up of the parked word on to another sleeper."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject ps_WaitingType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "procshare._core.Waiting",
    .tp_basicsize = sizeof(ps_Waiting),
    .tp_dealloc = (destructor)Waiting_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A blocking operation of the core as a generator of parks: yields (park, timeout) "
              "and returns the operation's result; the park is the object itself (wait, wake).",
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)Waiting_next,
    .tp_methods = Waiting_methods,
};
