#include "ring.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <structmember.h>

#include "codec.h"
#include "mapping.h"
#include "mutex.h"
#include "park.h"
#include "platform.h"
#include "wait.h"

/* The queue's own header (PS_RING_HEADER bytes): what every shard shares.
 * The first line is read-mostly; put_seq, which every put bumps, has the
 * second to itself. */
typedef struct {
    uint64_t capacity;           /* bytes in each shard's data area, a multiple of 8 */
    uint64_t maxsize;            /* most messages at once, 0: no limit (else one shard) */
    uint32_t shards;             /* rings, each with its own lock */
    uint32_t origin;             /* the creator's pid: shards are counted from it */
    _Atomic uint64_t unfinished; /* JoinableQueue: puts not yet task_done() */
    _Atomic uint32_t join_seq;   /* bumped when unfinished reaches 0 */
    char line[64 - 36];
    _Atomic uint32_t put_seq; /* bumped by every put: getters park on it */
    _Atomic uint32_t getters; /* sleepers on put_seq */
} ps_queue_layout;

/* One shard: a ring of records; its data area follows all the shard
 * headers.  Producers and consumers each have a line and a robust lock of
 * their own, so that one producer and one consumer never wait for each
 * other: a put publishes by storing tail, a get by storing head.  A queue
 * with a maxsize counts its messages, which needs one lock for both sides:
 * there producers take the consumers' lock. */
typedef struct {
    ps_mutex_layout put_lock; /* producers' (without a maxsize) */
    _Atomic uint64_t tail;    /* write position (bytes, ever increasing) */
    _Atomic uint32_t backed;  /* its data pages are backed by memory (see shard_backed) */
    char line[64 - 36];
    ps_mutex_layout lock;     /* consumers' (and, with a maxsize, producers') */
    _Atomic uint64_t head;    /* read position */
    _Atomic uint64_t count;   /* messages between head and tail, kept with a maxsize */
    _Atomic uint32_t get_seq; /* bumped by every get from this shard: its putters park on it */
    _Atomic uint32_t putters; /* sleepers on get_seq */
} ps_shard_layout;

_Static_assert(sizeof(ps_queue_layout) <= PS_RING_HEADER, "queue header size");
_Static_assert(sizeof(ps_shard_layout) <= PS_RING_SHARD, "shard header size");

#define RECORD_HEADER 8  /* u32 length, u32 tag */
#define GET_STREAK 16    /* gets a handle takes from one shard in a row, at most */
#define WRAP 0xffffffffu /* a length meaning: continue at offset 0 */
#define ALIGN8(n) (((n) + 7) & ~(uint64_t)7)

typedef struct {
    PS_VIEW_HEAD
    ps_queue_layout *q;
    char *shard0;      /* shard i's header is at shard0 + i * PS_RING_SHARD */
    char *data0;       /* shard i's data is at data0 + i * capacity */
    uint64_t capacity; /* per shard, as checked when attached */
    uint64_t maxsize;
    uint32_t shards;
    uint32_t home_pid; /* the process home belongs to (0: none yet) */
    uint32_t home;     /* the shard this handle puts into */
    uint32_t next_pid; /* the process next belongs to */
    uint32_t next;     /* the shard this handle's next get tries first */
    uint32_t streak;   /* gets in a row this handle took from next */
    char closed;       /* _closed: this handle can no longer put or get */
    /* Positions seen last: at most the real ones, which only grow, so they
     * prove room (head) or messages (tail) without reading the other side's
     * line, which moves with its every operation. */
    uint64_t seen_head; /* of the home shard */
    uint64_t seen_tail[PS_RING_MAX_SHARDS];
} ps_Ring;

static ps_shard_layout *shard_at(ps_Ring *self, uint32_t i)
{
    return (ps_shard_layout *)(self->shard0 + (size_t)i * PS_RING_SHARD);
}

static char *data_at(ps_Ring *self, uint32_t i)
{
    return self->data0 + (size_t)i * self->capacity;
}

/* Bytes of a queue of shards rings of capacity bytes each, or 0 if too many. */
static uint64_t ring_size(uint64_t capacity, uint64_t shards)
{
    if (shards == 0 || shards > PS_RING_MAX_SHARDS ||
        capacity > (PY_SSIZE_T_MAX - PS_RING_HEADER) / shards - PS_RING_SHARD)
        return 0;
    return PS_RING_HEADER + shards * (PS_RING_SHARD + capacity);
}

/* Ring(mapping, offset): the queue whose header is at offset; its geometry
 * is read from the header (written by Ring.init) and checked against the
 * mapping. */
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
    ps_queue_layout *q = (ps_queue_layout *)p;
    uint64_t cap = q->capacity, shards = q->shards, size = ring_size(cap, shards);
    if (cap < 64 || cap % 8 != 0 || size == 0 || (q->maxsize != 0 && shards != 1))
        return ps_damaged("queue", "geometry");
    char *all = ps_mapping_ptr(mapping, offset, (Py_ssize_t)size, 8);
    if (all == NULL)
        return NULL;
    ps_Ring *self = (ps_Ring *)ps_view_new(type, mapping);
    if (self == NULL)
        return NULL;
    self->q = q;
    self->shard0 = all + PS_RING_HEADER;
    self->data0 = self->shard0 + shards * PS_RING_SHARD;
    self->capacity = cap;
    self->maxsize = q->maxsize;
    self->shards = (uint32_t)shards;
    return (PyObject *)self;
}

/* Whether shard i's data pages are backed by memory.  A queue is created
 * with only shard 0's backed, so that shards no producer uses cost no
 * memory; the first producer given another backs it, or, when memory is
 * short, puts into shard 0 instead. */
static int shard_backed(ps_Ring *self, uint32_t i)
{
    ps_shard_layout *r = shard_at(self, i);
    if (atomic_load(&r->backed))
        return 1;
    if (ps_back_pages(data_at(self, i), self->capacity) < 0)
        return 0;
    atomic_store(&r->backed, 1);
    return 1;
}

/* The shard of this process: its pid's distance from the creator's, modulo
 * the shards, so that every handle of one process agrees, the creator's is
 * shard 0, and processes forked one after another (consecutive pids) get
 * shards of their own. */
static uint32_t own_shard(ps_Ring *self)
{
    return (ps_self_pid() - self->q->origin) % self->shards;
}

/* The shard this process puts into: its own, so that the messages of one
 * producer stay in order and up to `shards` producers forked together never
 * share a lock; shard 0 when its own cannot be backed. */
static uint32_t home_of(ps_Ring *self)
{
    uint32_t pid = ps_self_pid();
    if (self->home_pid != pid) {
        uint32_t i = own_shard(self);
        self->home = shard_backed(self, i) ? i : 0;
        self->home_pid = pid;
        self->seen_head = 0;
    }
    return self->home;
}

/* The shard this handle's next get looks at first: the one it read last,
 * until it has taken GET_STREAK messages from it in a row, then the one after
 * (so a busy shard never keeps the others waiting long, and a lone consumer
 * does not look through every empty shard before each message); in each
 * process it starts at its own, so that getters spread over the shards. */
static uint32_t next_of(ps_Ring *self)
{
    uint32_t pid = ps_self_pid();
    if (self->next_pid != pid) {
        self->next = own_shard(self);
        self->next_pid = pid;
    }
    return self->next;
}

/* ---- one shard, under its lock ------------------------------------------- */

static uint64_t record_size(uint64_t len)
{
    return RECORD_HEADER + ALIGN8(len);
}

/* The record at read position pos of shard i, following a wrap marker; NULL
 * if the bytes there are not a valid record (damaged memory). */
static char *record_at(ps_Ring *self, uint32_t i, uint64_t *pos, uint64_t tail, uint32_t *len,
                       uint32_t *tag)
{
    for (int hop = 0; hop < 2; hop++) {
        uint64_t off = *pos % self->capacity;
        if (tail - *pos < RECORD_HEADER)
            return NULL;
        char *rec = data_at(self, i) + off;
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

/* The records of shard i between positions pos and tail (-1 if the bytes
 * there are not valid records). */
static int64_t records(ps_Ring *self, uint32_t i, uint64_t pos, uint64_t tail)
{
    int64_t n = 0;
    if (pos > tail || tail - pos > self->capacity)
        return pos > tail ? 0 : -1; /* head > tail: a restart at offset 0 was cut short */
    while (pos != tail) {
        uint32_t len, tag;
        if (record_at(self, i, &pos, tail, &len, &tag) == NULL)
            return pos == tail ? n : -1;
        pos += record_size(len);
        n++;
    }
    return n;
}

/* The lock of shard i that a put (putting) or a get takes. */
static ps_mutex_layout *lock_of(ps_Ring *self, uint32_t i, int putting)
{
    ps_shard_layout *r = shard_at(self, i);
    return putting && !self->maxsize ? &r->put_lock : &r->lock;
}

/* Just took shard i's lock for putting or getting: repair what a dead holder
 * left, and check the positions (so that damaged ones raise instead of
 * making the shard look forever full or empty).  0, or -1 with
 * CorruptSegmentError (then unlocked again).  Without a death, a producer
 * of a queue without maxsize reads only its own line (the head seen last
 * stands for head) and a consumer only its own (likewise the tail seen
 * last).  A holder that died while restarting an empty ring at offset 0
 * left head > tail: getters see an empty shard, and the next holder of the
 * lock that puts moves tail up. */
static int ring_locked(ps_Ring *self, uint32_t i, int putting, int died)
{
    ps_shard_layout *r = shard_at(self, i);
    int one = self->maxsize != 0; /* one lock for both sides */
    int real = one || died;       /* head and tail both read now */
    uint64_t head = real || !putting ? atomic_load(&r->head) : self->seen_head;
    uint64_t tail = real || putting ? atomic_load(&r->tail) : self->seen_tail[i];
    if (died && head > tail && (putting || one)) {
        atomic_store(&r->tail, head);
        tail = head;
    }
    if (real && putting)
        self->seen_head = head;
    if (real)
        self->seen_tail[i] = tail;
    /* Head may pass tail only for getters without a count (a restart cut
     * short, or the tail seen last); a producer's head seen last may lag by
     * any distance; otherwise the two are at most a ring apart. */
    int lagging = putting && !real;
    int sane = self->q->capacity == self->capacity && head % 8 == 0 && tail % 8 == 0 &&
               (head > tail ? !putting && !one : lagging || tail - head <= self->capacity);
    if (sane && one) { /* the count: repaired after a death, else checked */
        int64_t n = died ? records(self, i, head, tail) : (int64_t)atomic_load(&r->count);
        if (died && n >= 0)
            atomic_store(&r->count, (uint64_t)n);
        sane = n >= 0 && (uint64_t)n <= (tail - head) / RECORD_HEADER &&
               (head == tail) == (n == 0) && (uint64_t)n <= self->maxsize;
    }
    if (!sane) {
        ps_mutex_unlock(lock_of(self, i, putting));
        ps_damaged("queue", "counters");
        return -1;
    }
    return 0;
}

/* Add d to a shard's counter, which only its lock holder changes: a load
 * and a store, not a locked instruction. */
static void bump(_Atomic uint64_t *counter, uint64_t d)
{
    atomic_store(counter, atomic_load_explicit(counter, memory_order_relaxed) + d);
}

/* Shard i is empty at tail but a message of need bytes fits only from
 * offset 0: move head and tail to the next lap's start, holding the
 * consumers' lock too (taken here unless the queue has one lock).  Head moves
 * first: a holder killed between the two stores leaves head > tail.  0, or
 * -1 with an exception (a signal handler raised while waiting). */
static int restart(ps_Ring *self, uint32_t i, uint64_t tail)
{
    ps_shard_layout *r = shard_at(self, i);
    int died = 0;
    if (!self->maxsize && ps_mutex_lock(&r->lock, -1, &died) < 0)
        return -1;
    if (atomic_load(&r->head) == tail) { /* still empty: getters leave head alone then */
        uint64_t start = tail + self->capacity - tail % self->capacity;
        atomic_store(&r->head, start);
        atomic_store(&r->tail, start);
        self->seen_head = start;
    }
    if (!self->maxsize)
        ps_mutex_unlock(&r->lock);
    return 0;
}

/* Append one record to shard i if it fits; 1 done, 0 full, -1 error.
 * Publishes by storing tail. */
static int try_put(ps_Ring *self, uint32_t i, uint32_t tag, const char *buf, uint32_t len)
{
    ps_shard_layout *r = shard_at(self, i);
    char *data = data_at(self, i);
    uint64_t need = record_size(len), tail = atomic_load(&r->tail), off, waste;
    for (int looked = 0;; looked++) {
        uint64_t head = self->seen_head;
        off = tail % self->capacity;
        waste = self->capacity - off < need ? self->capacity - off : 0;
        if (head <= tail && tail + waste + need - head <= self->capacity)
            break;
        if (looked == 0) { /* perhaps only the head seen last is behind */
            self->seen_head = atomic_load(&r->head);
            if (self->seen_head > tail || tail - self->seen_head > self->capacity) {
                ps_damaged("queue", "counters");
                return -1;
            }
        } else if (looked == 1 && head == tail && off != 0) {
            if (restart(self, i, tail) < 0)
                return -1;
            tail = atomic_load(&r->tail);
        } else
            return 0;
    }
    if (self->maxsize && atomic_load(&r->count) >= self->maxsize)
        return 0;
    if (waste) {
        uint32_t wrap = WRAP;
        memcpy(data + off, &wrap, 4);
        off = 0;
    }
    memcpy(data + off, &len, 4);
    memcpy(data + off + 4, &tag, 4);
    memcpy(data + off + RECORD_HEADER, buf, len);
    atomic_store(&r->tail, tail + waste + need); /* publish */
    if (self->maxsize)
        bump(&r->count, 1);
    atomic_fetch_add(&self->q->put_seq, 1);
    return 1;
}

/* Whether shard i seems to hold a message (without its lock: a hint, or
 * the truth for the holder of its consumers' lock). */
static int shard_has(ps_Ring *self, uint32_t i)
{
    ps_shard_layout *r = shard_at(self, i);
    uint64_t head = atomic_load(&r->head);
    if (head < self->seen_tail[i])
        return 1;
    self->seen_tail[i] = atomic_load(&r->tail);
    return head < self->seen_tail[i];
}

/* Remove the oldest record of shard i: its bytes (its tag into *tag), Py_None
 * if empty, NULL with an exception on damage or memory error.  Publishes by
 * storing head. */
static PyObject *try_get(ps_Ring *self, uint32_t i, uint32_t *tag_out)
{
    ps_shard_layout *r = shard_at(self, i);
    if (!shard_has(self, i))
        Py_RETURN_NONE;
    uint64_t head = atomic_load(&r->head), tail = self->seen_tail[i];
    uint32_t len, tag;
    char *rec = tail - head <= self->capacity ? record_at(self, i, &head, tail, &len, &tag) : NULL;
    if (rec == NULL)
        return ps_damaged("queue", "record");
    PyObject *payload = PyBytes_FromStringAndSize(rec + RECORD_HEADER, len);
    if (payload == NULL)
        return NULL;
    atomic_store(&r->head, head + record_size(len)); /* publish */
    if (self->maxsize)
        bump(&r->count, (uint64_t)-1);
    atomic_store(&r->get_seq, atomic_load_explicit(&r->get_seq, memory_order_relaxed) + 1);
    *tag_out = tag;
    return payload;
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

/* ---- put and get: one step for every blocking operation --------------- */

/* A put or get.  move runs holding the lock of shard op->shard: it moves
 * what it can, adds to *moved how many messages it moved, and returns 1 when
 * the operation is complete, 0 when it must wait for the other side, -1 on
 * error.  finish makes the result outside the lock (complete: 0 when the
 * deadline passed). */
typedef struct ring_op ring_op;
struct ring_op {
    ps_Ring *ring;
    int putting;
    int on_lock;    /* the last park was on the lock word of shard */
    uint32_t shard; /* the shard being worked on */
    int (*move)(ring_op *op, Py_ssize_t *moved);
    PyObject *(*finish)(ring_op *op, int complete);
};

/* Try shard i's lock for op's side once (passing on woke when the last park
 * was on it); on the final try of a wait, wait briefly for it instead: its
 * holder only copies bytes.  1 taken, 0 not (*park says how to wait), -1
 * error. */
static int lock_shard(ps_wait *w, ring_op *op, uint32_t i, int woke, int *died, ps_park *park)
{
    ps_mutex_layout *lock = lock_of(op->ring, i, op->putting);
    int got = ps_mutex_try(lock, op->on_lock && op->shard == i ? woke : -1, died, park);
    if (!got && w->last)
        got = ps_mutex_lock(lock, PS_SPIN_NS, died);
    return got;
}

/* With shard op->shard locked for op's side: check it, run the move,
 * unlock, and wake sleepers of the other side for every message moved.  The
 * move's result. */
static int locked_move(ring_op *op, int died, Py_ssize_t *moved)
{
    ps_Ring *self = op->ring;
    ps_shard_layout *r = shard_at(self, op->shard);
    op->on_lock = 0;
    if (ring_locked(self, op->shard, op->putting, died) < 0)
        return -1;
    int done = op->move(op, moved);
    ps_mutex_unlock(lock_of(self, op->shard, op->putting));
    int n = *moved < INT32_MAX ? (int)*moved : INT32_MAX;
    if (n > 0 && op->putting)
        ps_wake_if(&self->q->put_seq, &self->q->getters, n);
    else if (n > 0)
        ps_wake_if(&r->get_seq, &r->putters, n);
    return done;
}

static int finished(ps_wait *w, ring_op *op, int complete)
{
    return (w->result = op->finish(op, complete)) == NULL ? -1 : PS_DONE;
}

/* Park on a sequence word, counted as a sleeper only once asleep: a
 * spinner sees the word change without a wake-up, and counting spinners too
 * made each operation of the other side a futex call (16 cores, 1 -> 1:
 * 1.93 M/s against 1.57 M/s counted). */
static int park_on(ps_wait *w, _Atomic uint32_t *word, uint32_t seen, _Atomic uint32_t *sleepers)
{
    w->park = (ps_park){
        .word = word,
        .seen = seen,
        .sleepers = sleepers,
        .spin_ns = PS_SPIN_NS,
        .slice_ns = -1,
    };
    return PS_PARK;
}

/* A put: into this handle's home shard only, so that the messages of one
 * producer stay in order.  Parks on the lock word (robustly: a dead holder
 * is replaced) or on the shard's get count. */
static int put_step(ps_wait *w, int woke)
{
    ring_op *op = w->op;
    ps_Ring *self = op->ring;
    uint32_t home = home_of(self);
    int died = 0;
    int got = lock_shard(w, op, home, woke, &died, &w->park);
    op->shard = home;
    if (got < 0)
        return -1;
    if (!got) {
        if (w->last)
            return finished(w, op, 0);
        op->on_lock = 1;
        return PS_PARK;
    }
    /* The get count this put may wait on, read before the move looks for
     * room: getters bump it without the producers' lock. */
    ps_shard_layout *r = shard_at(self, home);
    uint32_t seen = atomic_load(&r->get_seq);
    Py_ssize_t moved = 0;
    int done = locked_move(op, died, &moved);
    if (done < 0)
        return -1;
    if (done || w->last)
        return finished(w, op, done);
    return park_on(w, &r->get_seq, seen, &r->putters);
}

/* One look over every shard, starting after the one read last, for one that
 * holds a message and whose lock is free: 1 when the get completed there,
 * 0 when none did (*busy: a shard with a message whose lock was taken, with
 * how to wait for it, or -1), -1 on error. */
static int get_scan(ps_wait *w, int woke, int64_t *busy, ps_park *busy_park)
{
    ring_op *op = w->op;
    ps_Ring *self = op->ring;
    uint32_t start = op->on_lock ? op->shard : next_of(self);
    *busy = -1;
    for (uint32_t k = 0; k < self->shards; k++) {
        uint32_t i = (start + k) % self->shards;
        int parked_here = op->on_lock && op->shard == i;
        if (!parked_here && !shard_has(self, i))
            continue;
        int died = 0;
        ps_park park;
        if (!ps_mutex_try(lock_of(self, i, 0), parked_here ? woke : -1, &died, &park)) {
            if (*busy < 0) {
                *busy = i;
                *busy_park = park;
            }
            continue;
        }
        op->shard = i;
        Py_ssize_t moved = 0;
        int done = locked_move(op, died, &moved);
        if (done != 0) {
            self->streak = i == self->next ? self->streak + 1 : 1;
            self->next = i;
            if (self->streak >= GET_STREAK) {
                self->next = (i + 1) % self->shards;
                self->streak = 0;
            }
            return done;
        }
    }
    return 0;
}

/* A get: from any shard that holds a message and whose lock is free.  When
 * every shard with a message is busy, park on one's lock word (robustly: a
 * dead holder is replaced); when none has one, on the put count, read before
 * a second look, so that a put made since wakes this getter (the first look
 * does without it: the put count's line moves with every put). */
static int get_step(ps_wait *w, int woke)
{
    ring_op *op = w->op;
    ps_Ring *self = op->ring;
    int64_t busy;
    ps_park busy_park = {0};
    uint32_t seen = 0;
    for (int look = 0; look < 2; look++) {
        if (look == 1)
            seen = atomic_load(&self->q->put_seq);
        int done = get_scan(w, woke, &busy, &busy_park);
        if (done != 0)
            return done < 0 ? -1 : finished(w, op, 1);
        if (busy >= 0)
            break;
        op->on_lock = 0;
    }
    if (busy >= 0) {
        op->shard = (uint32_t)busy;
        if (w->last) {
            int died = 0;
            int got = lock_shard(w, op, op->shard, woke, &died, &busy_park);
            Py_ssize_t moved = 0;
            int done = got > 0 ? locked_move(op, died, &moved) : got;
            return done < 0 ? -1 : finished(w, op, done);
        }
        op->on_lock = 1;
        w->park = busy_park;
        return PS_PARK;
    }
    if (w->last)
        return finished(w, op, 0);
    return park_on(w, &self->q->put_seq, seen, &self->q->getters);
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
    ring_op base;
    ps_encoded *msgs; /* encoded messages, all known to fit */
    Py_ssize_t n, done;
    ps_encoded one; /* msgs when there is only one */
} put_op;

static int put_move(ring_op *base, Py_ssize_t *moved)
{
    put_op *op = (put_op *)base;
    for (; op->done < op->n; op->done++, (*moved)++) {
        ps_encoded *m = &op->msgs[op->done];
        int put = try_put(base->ring, base->shard, m->tag, m->data, (uint32_t)m->len);
        if (put <= 0)
            return put;
    }
    return 1;
}

/* How many messages were put. */
static PyObject *put_finish(ring_op *base, int complete)
{
    (void)complete;
    return PyLong_FromSsize_t(((put_op *)base)->done);
}

static void put_clear(put_op *op)
{
    for (Py_ssize_t i = 0; i < op->n; i++)
        ps_encoded_done(&op->msgs[i]);
    if (op->msgs != &op->one)
        PyMem_Free(op->msgs);
    op->msgs = NULL;
    op->n = 0;
}

static void put_free(void *op)
{
    put_clear(op);
    PyMem_Free(op);
}

/* Encode every value (before anything is put, so an unpicklable one changes
 * nothing) and check that each fits.  0, or -1 with an exception (op then
 * holds nothing). */
static int put_prepare(put_op *op, ps_Ring *self, PyObject *const *values, Py_ssize_t n)
{
    *op = (put_op){.base = {self, 1, 0, 0, put_move, put_finish}};
    op->msgs = n == 1 ? &op->one : PyMem_Calloc((size_t)(n ? n : 1), sizeof(ps_encoded));
    if (op->msgs == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (; op->n < n; op->n++)
        if (ps_encode(values[op->n], &op->msgs[op->n]) < 0 ||
            check_fits(self, op->msgs[op->n].len) < 0) {
            op->n++; /* ps_encode leaves a message that ps_encoded_done releases */
            put_clear(op);
            return -1;
        }
    return 0;
}

/* Put values, waiting up to timeout: how many were put, or NULL. */
static PyObject *put_values(ps_Ring *self, PyObject *const *values, Py_ssize_t n, int64_t timeout)
{
    put_op op;
    if (put_prepare(&op, self, values, n) < 0)
        return NULL;
    ps_wait w;
    ps_wait_init(&w, put_step, (PyObject *)self, &op, timeout);
    PyObject *done = ps_wait_block(&w);
    put_clear(&op);
    return done;
}

typedef struct {
    ring_op base;
    PyObject *out;    /* list receiving the records' bytes; NULL for get(): */
    PyObject *single; /* the one record's bytes get() takes, once taken */
    uint32_t *tags;   /* their tags: &one for a single get, else grown as needed */
    uint32_t one;
    Py_ssize_t max, room;
} get_op;

static int get_move(ring_op *base, Py_ssize_t *moved)
{
    get_op *op = (get_op *)base;
    if (op->out == NULL) { /* get(): no list to make, grow and drop */
        PyObject *data = try_get(base->ring, base->shard, &op->one);
        if (data == NULL)
            return -1;
        if (data == Py_None) {
            Py_DECREF(data);
            return 0;
        }
        op->single = data;
        (*moved)++;
        return 1;
    }
    Py_ssize_t n;
    while ((n = PyList_GET_SIZE(op->out)) < op->max) {
        if (n == op->room) {
            Py_ssize_t room = n * 2 < op->max ? (n ? n * 2 : 16) : op->max;
            uint32_t *tags = PyMem_Realloc(op->tags, (size_t)room * sizeof *tags);
            if (tags == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            op->tags = tags;
            op->room = room;
        }
        PyObject *data = try_get(base->ring, base->shard, &op->tags[n]);
        if (data == NULL)
            return -1;
        if (data == Py_None) {
            Py_DECREF(data);
            break;
        }
        int e = PyList_Append(op->out, data);
        Py_DECREF(data);
        (*moved)++;
        if (e < 0)
            return -1;
    }
    return PyList_GET_SIZE(op->out) > 0;
}

/* The value the bytes of a record with this tag encode (outside the lock:
 * unpickling runs arbitrary code); the bytes themselves for a bytes message. */
static PyObject *decoded(PyObject *data, uint32_t tag)
{
    if (tag == TAG_BYTES)
        return Py_NewRef(data);
    return ps_decode_value(tag, PyBytes_AS_STRING(data), (uint64_t)PyBytes_GET_SIZE(data));
}

/* Replace the bytes of each record taken by the value they encode.  0, or -1
 * with an exception. */
static int decode_all(get_op *op)
{
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(op->out); i++) {
        if (op->tags[i] == TAG_BYTES)
            continue; /* the message is its bytes */
        PyObject *v = decoded(PyList_GET_ITEM(op->out, i), op->tags[i]);
        if (v == NULL)
            return -1;
        PyList_SetItem(op->out, i, v); /* steals v, releases data */
    }
    return 0;
}

/* queue.Full or queue.Empty, raised. */
static PyObject *raise_queue(const char *name, PyObject **cache)
{
    PyObject *exc = ps_python_attr("queue", name, cache);
    if (exc != NULL)
        PyErr_SetNone(exc);
    return NULL;
}

static PyObject *queue_empty; /* queue.Empty, once looked up */

/* The decoded values taken (empty when the deadline passed first); for get(),
 * the one value, or queue.Empty raised. */
static PyObject *get_finish(ring_op *base, int complete)
{
    (void)complete;
    get_op *op = (get_op *)base;
    if (op->out == NULL)
        return op->single ? decoded(op->single, op->one) : raise_queue("Empty", &queue_empty);
    return decode_all(op) < 0 ? NULL : Py_NewRef(op->out);
}

static void get_clear(get_op *op)
{
    Py_XDECREF(op->out);
    Py_XDECREF(op->single);
    if (op->tags != &op->one)
        PyMem_Free(op->tags);
}

static void get_free(void *op)
{
    get_clear(op);
    PyMem_Free(op);
}

/* A get of up to max messages (max 0: get(), one message, no list). */
static int get_prepare(get_op *op, ps_Ring *self, Py_ssize_t max)
{
    *op = (get_op){.base = {self, 0, 0, 0, get_move, get_finish}, .max = max};
    if (max <= 1) {
        op->tags = &op->one;
        op->room = 1;
    }
    if (max == 0)
        return 0;
    op->out = PyList_New(0);
    return op->out == NULL ? -1 : 0;
}

/* Take up to max messages, waiting up to timeout for the first; the decoded
 * values (empty at the deadline), or NULL with an exception; with max 0, as
 * get(): the one value, or NULL with queue.Empty at the deadline. */
static PyObject *get_values(ps_Ring *self, Py_ssize_t max, int64_t timeout)
{
    get_op op;
    if (get_prepare(&op, self, max) < 0)
        return NULL;
    ps_wait w;
    ps_wait_init(&w, get_step, (PyObject *)self, &op, timeout);
    PyObject *out = ps_wait_block(&w);
    get_clear(&op);
    return out;
}

/* Whether this handle was closed (then ValueError is set): every put and get
 * entry point asks first. */
static int closed(ps_Ring *self)
{
    if (self->closed)
        PyErr_Format(PyExc_ValueError, "Queue %R is closed", (PyObject *)self);
    return self->closed;
}

/* _put_many(values, block, timeout) -> int: put every value in order, as many
 * per lock as fit; how many were put before the deadline.  Values that cannot
 * be encoded or never fit raise before anything is put. */
static PyObject *Ring_put_many(ps_Ring *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "_put_many(values: list, block, timeout) -> int");
        return NULL;
    }
    if (closed(self))
        return NULL;
    int64_t timeout = parse_block_timeout(args[1], args[2]);
    if (timeout == -2)
        return NULL;
    return put_values(self, PySequence_Fast_ITEMS(args[0]), PyList_GET_SIZE(args[0]), timeout);
}

/* _get_many(max, block, timeout) -> list: at least one value unless the
 * deadline passed (then empty), at most max. */
static PyObject *Ring_get_many(ps_Ring *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "_get_many(max, block, timeout) -> list");
        return NULL;
    }
    if (closed(self))
        return NULL;
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

/* (block=True, timeout=None) after the n leading arguments of a Queue method,
 * as the timeout in ns (-1: no limit, 0: do not wait), or -2 with an
 * exception (also when this handle is closed). */
static int64_t queue_args(ps_Ring *self, const char *sig, const char *const *names, int n,
                          PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                          PyObject **out)
{
    if (ps_parse_args(sig, names, n + 2, args, nargs, kwnames, out) < 0)
        return -2;
    for (int i = 0; i < n; i++)
        if (out[i] == NULL) {
            PyErr_Format(PyExc_TypeError, "%s: an argument is missing", sig);
            return -2;
        }
    if (closed(self))
        return -2;
    return parse_block_timeout(out[n] ? out[n] : Py_True, out[n + 1] ? out[n + 1] : Py_None);
}

/* put(obj, block=True, timeout=None): add obj, waiting for room; queue.Full
 * when there is none at the deadline (at once when not block). */
static PyObject *Ring_put(ps_Ring *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"obj", "block", "timeout"};
    static PyObject *full;
    PyObject *a[3];
    int64_t timeout =
        queue_args(self, "put(obj, block=True, timeout=None)", names, 1, args, nargs, kwnames, a);
    if (timeout == -2)
        return NULL;
    PyObject *done = put_values(self, a, 1, timeout);
    if (done == NULL)
        return NULL;
    int put = PyLong_AsSsize_t(done) == 1;
    Py_DECREF(done);
    return put ? Py_NewRef(Py_None) : raise_queue("Full", &full);
}

/* get(block=True, timeout=None): remove and return the oldest message;
 * queue.Empty when none came by the deadline. */
static PyObject *Ring_get(ps_Ring *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"block", "timeout"};
    PyObject *a[2];
    int64_t timeout =
        queue_args(self, "get(block=True, timeout=None)", names, 0, args, nargs, kwnames, a);
    return timeout == -2 ? NULL : get_values(self, 0, timeout);
}

/* ---- the same operations for asyncio: generators of parks -------------- */

/* The Waiting of op (allocated, and prepared with result prepared: 0, or -1
 * with an exception, then op is freed here), released with op_free. */
static PyObject *ring_waiting(ps_Ring *self, ps_step step, void *op, int prepared,
                              void (*op_free)(void *), int64_t timeout)
{
    if (prepared < 0) {
        PyMem_Free(op);
        return NULL;
    }
    ps_wait w;
    ps_wait_init(&w, step, (PyObject *)self, op, timeout);
    w.op_free = op_free;
    return ps_waiting_new(&w);
}

/* _putting(value, timeout) -> Waiting: put as a generator of parks; returns
 * how many were put (0 when still full at the deadline). */
static PyObject *Ring_putting(ps_Ring *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_putting(value, timeout) -> Waiting");
        return NULL;
    }
    int64_t timeout = ps_timeout_ns(args[1]);
    if (timeout == -2)
        return NULL;
    if (closed(self))
        return NULL;
    put_op *op = PyMem_Malloc(sizeof *op);
    if (op == NULL)
        return PyErr_NoMemory();
    return ring_waiting(self, put_step, op, put_prepare(op, self, args, 1), put_free, timeout);
}

/* _getting(timeout) -> Waiting: get as a generator of parks; returns the
 * value, or raises queue.Empty at the deadline. */
static PyObject *Ring_getting(ps_Ring *self, PyObject *arg)
{
    int64_t timeout = ps_timeout_ns(arg);
    if (timeout == -2)
        return NULL;
    if (closed(self))
        return NULL;
    get_op *op = PyMem_Malloc(sizeof *op);
    if (op == NULL)
        return PyErr_NoMemory();
    return ring_waiting(self, get_step, op, get_prepare(op, self, 0), get_free, timeout);
}

/* ---- JoinableQueue counters ---------------------------------------------- */

static PyObject *Ring_add_unfinished(ps_Ring *self, PyObject *arg)
{
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    ps_queue_layout *r = self->q;
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

/* True once no task is unfinished, else park until the count next reaches 0. */
static int join_step(ps_wait *w, int woke)
{
    (void)woke;
    ps_queue_layout *r = w->op;
    uint32_t seen = atomic_load(&r->join_seq);
    if (atomic_load(&r->unfinished) == 0)
        w->result = Py_NewRef(Py_True);
    else if (w->last)
        w->result = Py_NewRef(Py_False);
    else {
        w->park = (ps_park){.word = &r->join_seq, .seen = seen, .slice_ns = -1};
        return PS_PARK;
    }
    return PS_DONE;
}

/* join_wait(timeout) -> bool: True once no task is unfinished. */
static PyObject *Ring_join_wait(ps_Ring *self, PyObject *arg)
{
    int64_t timeout = ps_timeout_ns(arg);
    if (timeout == -2)
        return NULL;
    ps_wait w;
    ps_wait_init(&w, join_step, (PyObject *)self, self->q, timeout);
    return ps_wait_block(&w);
}

static PyObject *Ring_stats(ps_Ring *self, PyObject *unused)
{
    (void)unused;
    ps_queue_layout *q = self->q;
    uint64_t count = 0, used = 0, putters = 0;
    for (uint32_t i = 0; i < self->shards; i++) {
        ps_shard_layout *r = shard_at(self, i);
        uint64_t head = atomic_load(&r->head), tail = atomic_load(&r->tail);
        int64_t n = self->maxsize ? (int64_t)atomic_load(&r->count) : records(self, i, head, tail);
        count += n > 0 ? (uint64_t)n : 0; /* without a maxsize: counted, without a lock */
        used += head < tail ? tail - head : 0;
        putters += atomic_load(&r->putters);
    }
    return Py_BuildValue("(KKKKkKkk)", (unsigned long long)count, (unsigned long long)used,
                         (unsigned long long)self->capacity,
                         (unsigned long long)atomic_load(&q->unfinished),
                         (unsigned long)atomic_load(&q->getters), (unsigned long long)putters,
                         (unsigned long)atomic_load(&q->put_seq), (unsigned long)self->shards);
}

/* init(mapping, offset, capacity, maxsize, shards): write a new queue's
 * header (the segment is fresh and zero-filled). */
static PyObject *Ring_init(PyObject *cls, PyObject *const *args, Py_ssize_t nargs)
{
    (void)cls;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "init(mapping, offset, capacity, maxsize, shards)");
        return NULL;
    }
    Py_ssize_t offset = PyNumber_AsSsize_t(args[1], PyExc_OverflowError);
    unsigned long long cap = PyLong_AsUnsignedLongLong(args[2]);
    unsigned long long maxsize = PyLong_AsUnsignedLongLong(args[3]);
    unsigned long long shards = PyLong_AsUnsignedLongLong(args[4]);
    if (PyErr_Occurred())
        return NULL;
    uint64_t size = ring_size(cap, shards);
    if (cap < 64 || cap % 8 != 0 || size == 0 || (maxsize != 0 && shards != 1)) {
        PyErr_Format(PyExc_ValueError,
                     "a queue takes 1 to %d shards (1 when maxsize is set) of a multiple of "
                     "8 bytes, at least 64",
                     PS_RING_MAX_SHARDS);
        return NULL;
    }
    ps_queue_layout *q = (ps_queue_layout *)ps_mapping_ptr(args[0], offset, (Py_ssize_t)size, 8);
    if (q == NULL)
        return NULL;
    q->capacity = cap;
    q->maxsize = maxsize;
    q->shards = (uint32_t)shards;
    q->origin = ps_self_pid();
    ((ps_shard_layout *)((char *)q + PS_RING_HEADER))->backed = 1; /* with the segment */
    Py_RETURN_NONE;
}

static PyMethodDef Ring_methods[] = {
    {"init", (PyCFunction)(void (*)(void))Ring_init, METH_FASTCALL | METH_CLASS,
     "init(mapping, offset, capacity, maxsize, shards): lay out a new queue."},
    {"put", (PyCFunction)(void (*)(void))Ring_put, METH_FASTCALL | METH_KEYWORDS,
     "put(obj, block=True, timeout=None): add obj; queue.Full if no room by the deadline."},
    {"get", (PyCFunction)(void (*)(void))Ring_get, METH_FASTCALL | METH_KEYWORDS,
     "get(block=True, timeout=None): the oldest message; queue.Empty if none by the deadline."},
    {"_put_many", (PyCFunction)(void (*)(void))Ring_put_many, METH_FASTCALL,
     "_put_many(values, block, timeout) -> int: how many were put."},
    {"_get_many", (PyCFunction)(void (*)(void))Ring_get_many, METH_FASTCALL,
     "_get_many(max, block, timeout) -> list of values"},
    {"_putting", (PyCFunction)(void (*)(void))Ring_putting, METH_FASTCALL,
     "_putting(value, timeout) -> Waiting: put as a generator of parks."},
    {"_getting", (PyCFunction)Ring_getting, METH_O,
     "_getting(timeout) -> Waiting: get as a generator of parks."},
    {"_add_unfinished", (PyCFunction)Ring_add_unfinished, METH_O,
     "_add_unfinished(n): JoinableQueue's count; ValueError below zero."},
    {"_join_wait", (PyCFunction)Ring_join_wait, METH_O, "_join_wait(timeout) -> bool"},
    {"_stats", (PyCFunction)Ring_stats, METH_NOARGS,
     "_stats() -> (messages, bytes used, capacity of a shard, unfinished tasks, sleeping "
     "getters, sleeping putters, puts so far modulo 2**32, shards)"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Ring_members[] = {
    {"_closed", T_BOOL, offsetof(ps_Ring, closed), 0, "this handle can no longer put or get"},
    {NULL, 0, 0, 0, NULL},
};

PyTypeObject ps_RingType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "procshare._core.Ring",
    .tp_basicsize = sizeof(ps_Ring),
    .tp_dealloc = ps_view_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Ring(mapping, offset): a multi-producer, multi-consumer queue of message rings.",
    .tp_methods = Ring_methods,
    .tp_members = Ring_members,
    .tp_new = Ring_new,
};
