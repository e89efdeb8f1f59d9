#include "ring.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "codec.h"
#include "mapping.h"
#include "mutex.h"
#include "park.h"
#include "platform.h"

typedef struct {
    ps_mutex_layout lock; /* 24 bytes */
    uint32_t spare;
    _Atomic uint32_t put_seq;    /* bumped by every put: getters park on it */
    _Atomic uint32_t get_seq;    /* bumped by every get: putters park on it */
    _Atomic uint32_t getters;    /* sleepers on put_seq */
    _Atomic uint32_t putters;    /* sleepers on get_seq */
    _Atomic uint32_t join_seq;   /* bumped when unfinished reaches 0 */
    _Atomic uint64_t head;       /* read position (bytes, ever increasing) */
    _Atomic uint64_t tail;       /* write position */
    _Atomic uint64_t count;      /* messages between head and tail */
    _Atomic uint64_t unfinished; /* JoinableQueue: puts not yet task_done() */
    uint64_t capacity;           /* bytes in the data area, a multiple of 8 */
    uint64_t maxsize;            /* most messages at once, 0: no limit */
    uint32_t joiners;            /* sleepers on join_seq */
} ps_ring_layout;

_Static_assert(sizeof(ps_ring_layout) <= PS_RING_HEADER, "ring header size");

#define RECORD_HEADER 8  /* u32 length, u32 tag */
#define WRAP 0xffffffffu /* a length meaning: continue at offset 0 */
#define ALIGN8(n) (((n) + 7) & ~(uint64_t)7)

typedef struct {
    PS_VIEW_HEAD
    ps_ring_layout *r;
    char *data;
    uint64_t capacity;
} ps_Ring;

/* Ring(mapping, offset): the ring whose header is at offset; capacity and
 * maxsize are read from the header (written by Ring.init) and checked
 * against the mapping. */
static PyObject *Ring_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)kwds;
    PyObject *mapping;
    Py_ssize_t offset;
    if (!PyArg_ParseTuple(args, "On:Ring", &mapping, &offset))
        return NULL;
    char *p = ps_mapping_ptr(mapping, offset, PS_RING_HEADER, 8);
    if (p == NULL)
        return NULL;
    ps_ring_layout *r = (ps_ring_layout *)p;
    uint64_t cap = r->capacity;
    if (cap < 64 || cap % 8 != 0 || cap > (uint64_t)PY_SSIZE_T_MAX)
        return ps_damaged("queue", "capacity");
    char *data = ps_mapping_ptr(mapping, offset + PS_RING_HEADER, (Py_ssize_t)cap, 8);
    if (data == NULL)
        return NULL;
    ps_Ring *self = (ps_Ring *)ps_view_new(type, mapping);
    if (self == NULL)
        return NULL;
    self->r = r;
    self->data = data;
    self->capacity = cap;
    return (PyObject *)self;
}

/* ---- under the lock ----------------------------------------------------- */

static uint64_t record_size(uint64_t len)
{
    return RECORD_HEADER + ALIGN8(len);
}

/* The record at read position pos, following a wrap marker; NULL if the
 * bytes there are not a valid record (damaged memory). */
static char *record_at(ps_Ring *self, uint64_t *pos, uint64_t tail, uint32_t *len, uint32_t *tag)
{
    for (int hop = 0; hop < 2; hop++) {
        uint64_t off = *pos % self->capacity;
        if (tail - *pos < RECORD_HEADER)
            return NULL;
        char *rec = self->data + off;
        uint32_t l;
        memcpy(&l, rec, 4);
        if (l == WRAP) {
            *pos += self->capacity - off;
            continue;
        }
        if (record_size(l) > self->capacity - off || record_size(l) > tail - *pos)
            return NULL;
        *len = l;
        memcpy(tag, rec + 4, 4);
        return rec;
    }
    return NULL;
}

/* Count the records between head and tail again (after a holder died). */
static int recount(ps_Ring *self)
{
    ps_ring_layout *r = self->r;
    uint64_t pos = atomic_load(&r->head), tail = atomic_load(&r->tail), n = 0;
    if (pos > tail) { /* died while restarting an empty ring at offset 0 */
        atomic_store(&r->tail, pos);
        atomic_store(&r->count, 0);
        return 0;
    }
    if (tail - pos > self->capacity)
        return -1;
    while (pos != tail) {
        uint32_t len, tag;
        if (record_at(self, &pos, tail, &len, &tag) == NULL)
            return pos == tail ? 0 : -1;
        pos += record_size(len);
        n++;
    }
    atomic_store(&r->count, n);
    return 0;
}

/* Whether the counters agree with each other and with the ring's geometry
 * (checked under the lock before every operation, so that damaged counters
 * raise instead of making the ring look forever full or empty). */
static int ring_sane(ps_Ring *self)
{
    ps_ring_layout *r = self->r;
    uint64_t head = atomic_load(&r->head), tail = atomic_load(&r->tail);
    uint64_t count = atomic_load(&r->count);
    return r->capacity == self->capacity && head <= tail && tail - head <= self->capacity &&
           head % 8 == 0 && tail % 8 == 0 && count <= (tail - head) / RECORD_HEADER &&
           (head == tail) == (count == 0) && (r->maxsize == 0 || count <= r->maxsize);
}

/* Lock the ring (robustly); repair the count if the last holder died.
 * Returns 1, 0 on timeout, -1 with an exception (CorruptSegmentError when the
 * counters are damaged). */
static int ring_lock(ps_Ring *self, int64_t timeout)
{
    int died;
    int rc = ps_mutex_lock(&self->r->lock, timeout, &died);
    if (rc == 1 && ((died && recount(self) < 0) || !ring_sane(self))) {
        ps_mutex_unlock(&self->r->lock);
        ps_damaged("queue", "counters");
        return -1;
    }
    return rc;
}

static void ring_unlock(ps_Ring *self)
{
    ps_mutex_unlock(&self->r->lock);
}

/* Append one record if it fits; 1 done, 0 full.  Publishes by storing tail. */
static int try_put(ps_Ring *self, uint32_t tag, const char *buf, uint32_t len)
{
    ps_ring_layout *r = self->r;
    uint64_t head = atomic_load(&r->head), tail = atomic_load(&r->tail);
    uint64_t need = record_size(len), off = tail % self->capacity;
    if (head == tail && off != 0) {
        /* Empty: restart at offset 0, so that any message that fits the ring
         * fits now.  Head moves first; if we die between the two stores,
         * recount() sees head > tail and knows the ring was empty. */
        tail += self->capacity - off;
        off = 0;
        atomic_store(&r->head, tail);
        atomic_store(&r->tail, tail);
        head = tail;
    }
    uint64_t waste = self->capacity - off < need ? self->capacity - off : 0;
    if (tail + waste + need - head > self->capacity)
        return 0;
    if (r->maxsize && atomic_load(&r->count) >= r->maxsize)
        return 0;
    if (waste) {
        uint32_t wrap = WRAP;
        memcpy(self->data + off, &wrap, 4);
        off = 0;
    }
    memcpy(self->data + off, &len, 4);
    memcpy(self->data + off + 4, &tag, 4);
    memcpy(self->data + off + RECORD_HEADER, buf, len);
    atomic_store(&r->tail, tail + waste + need); /* publish */
    atomic_fetch_add(&r->count, 1);
    atomic_fetch_add(&r->put_seq, 1);
    return 1;
}

/* Remove the oldest record into a new (tag, bytes) tuple; Py_None if empty,
 * NULL with an exception on damage or memory error.  Publishes by storing head. */
static PyObject *try_get(ps_Ring *self)
{
    ps_ring_layout *r = self->r;
    uint64_t head = atomic_load(&r->head), tail = atomic_load(&r->tail);
    if (head == tail)
        Py_RETURN_NONE;
    uint32_t len, tag;
    char *rec = record_at(self, &head, tail, &len, &tag);
    if (rec == NULL)
        return ps_damaged("queue", "record");
    PyObject *payload = PyBytes_FromStringAndSize(rec + RECORD_HEADER, len);
    if (payload == NULL)
        return NULL;
    PyObject *item = Py_BuildValue("(IN)", tag, payload);
    if (item == NULL)
        return NULL;
    atomic_store(&r->head, head + record_size(len)); /* publish */
    atomic_fetch_sub(&r->count, 1);
    atomic_fetch_add(&r->get_seq, 1);
    return item;
}

/* ---- waiting ------------------------------------------------------------ */

/* Park on seq while it still holds seen, counted in *sleepers.  Returns 0
 * when woken or changed, 1 on timeout, -1 with an exception (signal). */
static int park_on(_Atomic uint32_t *seq, uint32_t seen, _Atomic uint32_t *sleepers,
                   int64_t deadline)
{
    int64_t left = -1;
    if (deadline >= 0 && (left = deadline - ps_now_ns()) <= 0)
        return 1;
    /* Counted while spinning too: the other side's wake-ups then come sooner,
     * and batches of put_many/get_many measured up to 1.5x faster so. */
    atomic_fetch_add(sleepers, 1);
    int r = ps_park_checked(seq, seen, left, PS_SPIN_NS, NULL);
    atomic_fetch_sub(sleepers, 1);
    return r < 0 ? -1 : !r;
}

static int64_t deadline_of(int64_t timeout)
{
    return timeout < 0 ? -1 : ps_now_ns() + timeout;
}

/* What is left of a wait until deadline, for ps_mutex_lock: -1 no limit, else >= 0. */
static int64_t left_until(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - ps_now_ns();
    return left > 0 ? left : 0;
}

/* Parse (block, timeout) the way Queue.put/get do: a timeout is ignored when
 * block is false.  Returns ns (-1: no limit, 0: do not wait) or -2 on error. */
static int64_t parse_block_timeout(PyObject *block, PyObject *timeout)
{
    int b = PyObject_IsTrue(block);
    if (b < 0)
        return -2;
    if (!b)
        return 0;
    if (timeout == Py_None)
        return -1;
    double t = PyFloat_AsDouble(timeout);
    if (t == -1.0 && PyErr_Occurred())
        return -2;
    if (t < 0) {
        PyErr_SetString(PyExc_ValueError, "'timeout' must be a non-negative number");
        return -2;
    }
    return ps_timeout_ns(timeout);
}

/* ---- put and get: one driver for every blocking operation ------------- */

/* A step of put or get, run holding the lock: moves what it can, adds to
 * *moved how many messages it moved, and returns 1 when the operation is
 * complete, 0 when it must wait for the other side, -1 on error. */
typedef int (*ring_step)(ps_Ring *self, void *op, Py_ssize_t *moved);

/* Run step under the lock until it completes, waiting (for space when
 * putting, for messages when getting) up to timeout ns (-1: no limit, 0: not
 * at all); at the deadline the step is tried once more.  Returns 1 complete,
 * 0 timed out, -1 with an exception.  Wakes sleepers of the other side for
 * every message moved. */
static int ring_run(ps_Ring *self, int64_t timeout, int putting, ring_step step, void *op)
{
    ps_ring_layout *r = self->r;
    _Atomic uint32_t *wait_seq = putting ? &r->get_seq : &r->put_seq;
    _Atomic uint32_t *wait_sleepers = putting ? &r->putters : &r->getters;
    _Atomic uint32_t *wake_seq = putting ? &r->put_seq : &r->get_seq;
    _Atomic uint32_t *wake_sleepers = putting ? &r->getters : &r->putters;
    int64_t deadline = deadline_of(timeout);
    int last = timeout == 0; /* the last try: the lock is still waited for briefly */
    for (;;) {
        int rc = ring_lock(self, last ? PS_SPIN_NS : left_until(deadline));
        if (rc < 0)
            return -1;
        if (rc == 0) {
            if (last)
                return 0;
            last = 1;
            continue;
        }
        Py_ssize_t moved = 0;
        int done = step(self, op, &moved);
        uint32_t seen = atomic_load(wait_seq);
        ring_unlock(self);
        if (moved > 0)
            ps_wake_if(wake_seq, wake_sleepers, moved < INT32_MAX ? (int)moved : INT32_MAX);
        if (done != 0 || last)
            return done;
        int p = park_on(wait_seq, seen, wait_sleepers, deadline);
        if (p < 0)
            return -1;
        last = p;
    }
}

/* Check that a message of len bytes can ever fit. */
static int check_fits(ps_Ring *self, Py_ssize_t len)
{
    if ((uint64_t)len <= UINT32_MAX - 8 && record_size((uint64_t)len) <= self->capacity)
        return 0;
    PyErr_Format(PyExc_ValueError,
                 "a message of %zd bytes does not fit in this queue's %llu-byte buffer", len,
                 (unsigned long long)self->capacity);
    return -1;
}

typedef struct {
    ps_encoded *msgs; /* encoded messages, all known to fit */
    Py_ssize_t n, done;
} put_op;

static int put_step(ps_Ring *self, void *opaque, Py_ssize_t *moved)
{
    put_op *op = opaque;
    for (; op->done < op->n; op->done++, (*moved)++) {
        ps_encoded *m = &op->msgs[op->done];
        if (!try_put(self, m->tag, m->data, (uint32_t)m->len))
            return 0;
    }
    return 1;
}

typedef struct {
    PyObject *out; /* list receiving (tag, bytes) */
    Py_ssize_t max;
} get_op;

static int get_step(ps_Ring *self, void *opaque, Py_ssize_t *moved)
{
    get_op *op = opaque;
    while (PyList_GET_SIZE(op->out) < op->max) {
        PyObject *item = try_get(self);
        if (item == NULL)
            return -1;
        if (item == Py_None) {
            Py_DECREF(item);
            break;
        }
        int e = PyList_Append(op->out, item);
        Py_DECREF(item);
        (*moved)++;
        if (e < 0)
            return -1;
    }
    return PyList_GET_SIZE(op->out) > 0;
}

/* Encode every value of seq (before anything is put, so an unpicklable one
 * changes nothing) and check that each fits; put them, waiting up to timeout.
 * Returns how many were put, or -1 with an exception. */
static Py_ssize_t put_values(ps_Ring *self, PyObject *const *values, Py_ssize_t n, int64_t timeout)
{
    ps_encoded one = {0},
               *msgs = n == 1 ? &one : PyMem_Calloc((size_t)(n ? n : 1), sizeof(ps_encoded));
    if (msgs == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t result = -1;
    for (Py_ssize_t i = 0; i < n; i++)
        if (ps_encode(values[i], &msgs[i]) < 0 || check_fits(self, msgs[i].len) < 0)
            goto done;
    put_op op = {msgs, n, 0};
    if (ring_run(self, timeout, 1, put_step, &op) >= 0)
        result = op.done;
done:
    for (Py_ssize_t i = 0; i < n; i++)
        ps_encoded_done(&msgs[i]);
    if (msgs != &one)
        PyMem_Free(msgs);
    return result;
}

/* put_many(values, block, timeout) -> int: put every value in order, as many
 * per lock as fit; how many were put before the deadline.  Values that cannot
 * be encoded or never fit raise before anything is put. */
static PyObject *Ring_put_many(ps_Ring *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "put_many(values: list, block, timeout) -> int");
        return NULL;
    }
    int64_t timeout = parse_block_timeout(args[1], args[2]);
    if (timeout == -2)
        return NULL;
    Py_ssize_t done =
        put_values(self, PySequence_Fast_ITEMS(args[0]), PyList_GET_SIZE(args[0]), timeout);
    return done < 0 ? NULL : PyLong_FromSsize_t(done);
}

/* put(value, block, timeout) -> bool: False when still full at the deadline. */
static PyObject *Ring_put(ps_Ring *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "put(value, block, timeout) -> bool");
        return NULL;
    }
    int64_t timeout = parse_block_timeout(args[1], args[2]);
    if (timeout == -2)
        return NULL;
    Py_ssize_t done = put_values(self, args, 1, timeout);
    return done < 0 ? NULL : PyBool_FromLong(done == 1);
}

/* Replace each (tag, bytes) of list by the value it encodes (outside the lock:
 * unpickling runs arbitrary code).  0, or -1 with an exception. */
static int decode_all(PyObject *list)
{
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
        PyObject *item = PyList_GET_ITEM(list, i);
        PyObject *data = PyTuple_GET_ITEM(item, 1);
        uint32_t tag = (uint32_t)PyLong_AsUnsignedLong(PyTuple_GET_ITEM(item, 0));
        PyObject *v = tag == TAG_BYTES ? Py_NewRef(data)
                                       : ps_decode_value(tag, PyBytes_AS_STRING(data),
                                                         (uint64_t)PyBytes_GET_SIZE(data));
        if (v == NULL)
            return -1;
        PyList_SetItem(list, i, v); /* steals v, releases item */
    }
    return 0;
}

/* Take up to max messages, waiting up to timeout for the first; the decoded
 * values (empty at the deadline), or NULL with an exception. */
static PyObject *get_values(ps_Ring *self, Py_ssize_t max, int64_t timeout)
{
    get_op op = {PyList_New(0), max};
    if (op.out == NULL)
        return NULL;
    if (ring_run(self, timeout, 0, get_step, &op) < 0 || decode_all(op.out) < 0)
        Py_CLEAR(op.out);
    return op.out;
}

/* get_many(max, block, timeout) -> list: at least one value unless the
 * deadline passed (then empty), at most max. */
static PyObject *Ring_get_many(ps_Ring *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "get_many(max, block, timeout) -> list");
        return NULL;
    }
    Py_ssize_t max = PyNumber_AsSsize_t(args[0], PyExc_OverflowError);
    if (max == -1 && PyErr_Occurred())
        return NULL;
    if (max < 1) {
        PyErr_SetString(PyExc_ValueError, "max_messages must be at least 1");
        return NULL;
    }
    int64_t timeout = parse_block_timeout(args[1], args[2]);
    return timeout == -2 ? NULL : get_values(self, max, timeout);
}

/* get(block, timeout, empty) -> the oldest value, or empty when there is still
 * none at the deadline. */
static PyObject *Ring_get(ps_Ring *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "get(block, timeout, empty) -> value | empty");
        return NULL;
    }
    int64_t timeout = parse_block_timeout(args[0], args[1]);
    PyObject *out = timeout == -2 ? NULL : get_values(self, 1, timeout);
    if (out == NULL)
        return NULL;
    PyObject *value = Py_NewRef(PyList_GET_SIZE(out) ? PyList_GET_ITEM(out, 0) : args[2]);
    Py_DECREF(out);
    return value;
}

/* ---- park entry points for asyncio (wait without taking anything) ----- */

/* _park_items(seen, timeout) / _park_space(seen, timeout) -> bool: wait until
 * the put (or get) sequence differs from seen, as read by seqs() before the
 * caller's last non-blocking attempt; False on timeout. */
static PyObject *park_py(ps_Ring *self, PyObject *const *args, Py_ssize_t nargs, int for_space)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_park(seen, timeout) -> bool");
        return NULL;
    }
    unsigned long seen = PyLong_AsUnsignedLong(args[0]);
    if (seen == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    int64_t timeout = ps_timeout_ns(args[1]);
    if (timeout == -2)
        return NULL;
    ps_ring_layout *r = self->r;
    _Atomic uint32_t *seq = for_space ? &r->get_seq : &r->put_seq;
    _Atomic uint32_t *sleepers = for_space ? &r->putters : &r->getters;
    int p = park_on(seq, (uint32_t)seen, sleepers, deadline_of(timeout));
    return p < 0 ? NULL : PyBool_FromLong(p == 0);
}

static PyObject *Ring_park_space(ps_Ring *self, PyObject *const *args, Py_ssize_t nargs)
{
    return park_py(self, args, nargs, 1);
}

static PyObject *Ring_park_items(ps_Ring *self, PyObject *const *args, Py_ssize_t nargs)
{
    return park_py(self, args, nargs, 0);
}

/* _unpark_items() / _unpark_space(): pass a wake-up on to one sleeper waiting
 * for messages (or for space), one that an abandoned wait took. */
static PyObject *Ring_unpark_items(ps_Ring *self, PyObject *unused)
{
    (void)unused;
    ps_wake_if(&self->r->put_seq, &self->r->getters, 1);
    Py_RETURN_NONE;
}

static PyObject *Ring_unpark_space(ps_Ring *self, PyObject *unused)
{
    (void)unused;
    ps_wake_if(&self->r->get_seq, &self->r->putters, 1);
    Py_RETURN_NONE;
}

/* seqs() -> (put_seq, get_seq) */
static PyObject *Ring_seqs(ps_Ring *self, PyObject *unused)
{
    (void)unused;
    return Py_BuildValue("(II)", atomic_load(&self->r->put_seq), atomic_load(&self->r->get_seq));
}

/* ---- JoinableQueue counters ---------------------------------------------- */

static PyObject *Ring_add_unfinished(ps_Ring *self, PyObject *arg)
{
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    ps_ring_layout *r = self->r;
    if (n >= 0) {
        atomic_fetch_add(&r->unfinished, (uint64_t)n);
        Py_RETURN_NONE;
    }
    uint64_t cur = atomic_load(&r->unfinished);
    do {
        if (cur < (uint64_t)(-n)) {
            PyErr_SetString(PyExc_ValueError, "task_done() called too many times");
            return NULL;
        }
    } while (!atomic_compare_exchange_weak(&r->unfinished, &cur, cur - (uint64_t)(-n)));
    if (cur == (uint64_t)(-n)) {
        atomic_fetch_add(&r->join_seq, 1);
        ps_futex_wake(&r->join_seq, -1);
    }
    Py_RETURN_NONE;
}

/* join_wait(timeout) -> bool: True once no task is unfinished. */
static PyObject *Ring_join_wait(ps_Ring *self, PyObject *arg)
{
    int64_t timeout = ps_timeout_ns(arg);
    if (timeout == -2)
        return NULL;
    ps_ring_layout *r = self->r;
    int64_t deadline = deadline_of(timeout);
    for (;;) {
        uint32_t seen = atomic_load(&r->join_seq);
        if (atomic_load(&r->unfinished) == 0)
            Py_RETURN_TRUE;
        int64_t left = -1;
        if (deadline >= 0 && (left = deadline - ps_now_ns()) <= 0)
            Py_RETURN_FALSE;
        if (ps_park_checked(&r->join_seq, seen, left, 0, NULL) < 0)
            return NULL;
    }
}

static PyObject *Ring_stats(ps_Ring *self, PyObject *unused)
{
    (void)unused;
    ps_ring_layout *r = self->r;
    uint64_t head = atomic_load(&r->head), tail = atomic_load(&r->tail);
    return Py_BuildValue("(KKKK)", (unsigned long long)atomic_load(&r->count),
                         (unsigned long long)(tail - head), (unsigned long long)self->capacity,
                         (unsigned long long)atomic_load(&r->unfinished));
}

/* init(mapping, offset, capacity, maxsize): write a new ring's header (the
 * segment is fresh and zero-filled). */
static PyObject *Ring_init(PyObject *cls, PyObject *const *args, Py_ssize_t nargs)
{
    (void)cls;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "init(mapping, offset, capacity, maxsize)");
        return NULL;
    }
    Py_ssize_t offset = PyNumber_AsSsize_t(args[1], PyExc_OverflowError);
    unsigned long long cap = PyLong_AsUnsignedLongLong(args[2]);
    unsigned long long maxsize = PyLong_AsUnsignedLongLong(args[3]);
    if (PyErr_Occurred())
        return NULL;
    if (cap < 64 || cap % 8 != 0) {
        PyErr_SetString(PyExc_ValueError, "capacity must be a multiple of 8, at least 64");
        return NULL;
    }
    if (ps_mapping_ptr(args[0], offset + PS_RING_HEADER, (Py_ssize_t)cap, 8) == NULL)
        return NULL;
    ps_ring_layout *r = (ps_ring_layout *)ps_mapping_ptr(args[0], offset, PS_RING_HEADER, 8);
    if (r == NULL)
        return NULL;
    r->capacity = cap;
    r->maxsize = maxsize;
    Py_RETURN_NONE;
}

static PyMethodDef Ring_methods[] = {
    {"init", (PyCFunction)(void (*)(void))Ring_init, METH_FASTCALL | METH_CLASS,
     "init(mapping, offset, capacity, maxsize): lay out a new ring."},
    {"put", (PyCFunction)(void (*)(void))Ring_put, METH_FASTCALL,
     "put(value, block, timeout) -> bool (False: still full at the deadline)"},
    {"put_many", (PyCFunction)(void (*)(void))Ring_put_many, METH_FASTCALL,
     "put_many(values, block, timeout) -> int: how many were put."},
    {"get", (PyCFunction)(void (*)(void))Ring_get, METH_FASTCALL,
     "get(block, timeout, empty) -> value | empty"},
    {"get_many", (PyCFunction)(void (*)(void))Ring_get_many, METH_FASTCALL,
     "get_many(max, block, timeout) -> list of values"},
    {"_park_space", (PyCFunction)(void (*)(void))Ring_park_space, METH_FASTCALL, NULL},
    {"_park_items", (PyCFunction)(void (*)(void))Ring_park_items, METH_FASTCALL, NULL},
    {"_unpark_space", (PyCFunction)Ring_unpark_space, METH_NOARGS, NULL},
    {"_unpark_items", (PyCFunction)Ring_unpark_items, METH_NOARGS, NULL},
    {"seqs", (PyCFunction)Ring_seqs, METH_NOARGS, "seqs() -> (put sequence, get sequence)"},
    {"add_unfinished", (PyCFunction)Ring_add_unfinished, METH_O,
     "add_unfinished(n): JoinableQueue's count; ValueError below zero."},
    {"join_wait", (PyCFunction)Ring_join_wait, METH_O, "join_wait(timeout) -> bool"},
    {"stats", (PyCFunction)Ring_stats, METH_NOARGS,
     "stats() -> (messages, bytes used, capacity, unfinished tasks)"},
    {NULL, NULL, 0, NULL},
};

PyTypeObject ps_RingType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "procshare._core.Ring",
    .tp_basicsize = sizeof(ps_Ring),
    .tp_dealloc = ps_view_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Ring(mapping, offset): a multi-producer, multi-consumer message ring.",
    .tp_methods = Ring_methods,
    .tp_new = Ring_new,
};
