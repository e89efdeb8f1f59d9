/* Waiting: every blocking operation of the core is written once, as a step.
 *
 * A step runs on the caller's thread with the GIL held.  It tries the
 * operation once (take the lock word, a semaphore unit, messages) and either
 * finishes, or fills in a park: which 32-bit word to wait on, and for how
 * long at most before it should be tried again.  Two drivers run the same
 * steps: ps_wait_block parks in the calling thread (acquire(), put(), get()),
 * and a Waiting object yields each park to Python, where asyncio parks in a
 * worker thread (procshare._sync.parking.run_async) so the event loop never
 * blocks, while the step, and so whatever it takes, stays on the awaiting
 * task's thread. */
#ifndef PROCSHARE_WAIT_H
#define PROCSHARE_WAIT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdatomic.h>
#include <stdint.h>

typedef struct {
    _Atomic uint32_t *word; /* park while *word == seen */
    uint32_t seen;
    _Atomic uint32_t *sleepers; /* counted while parked (NULL: not counted) */
    int count_spinning;         /* counted while spinning too, not only asleep */
    int64_t spin_ns;            /* spin this long before sleeping */
    int64_t slice_ns;           /* try again after this long at most (< 0: no limit) */
} ps_park;

typedef struct ps_wait ps_wait;

/* One try.  woke is what the last park returned: 1 woken or changed, 0 its
 * time ran out, -1 for the first try.  Returns PS_DONE with w->result set
 * (a new reference), PS_PARK with w->park filled in, or -1 with an
 * exception.  A try made with w->last set (the deadline has passed) must
 * not park. */
typedef int (*ps_step)(ps_wait *w, int woke);

enum { PS_PARK = 0, PS_DONE = 1 };

struct ps_wait {
    ps_step step;
    PyObject *target;          /* what the step works on (a strong reference) */
    void *op;                  /* the step's own state */
    void (*op_free)(void *op); /* releases op (NULL: nothing to release) */
    PyObject *result;          /* set by the step when done */
    int64_t deadline;          /* monotonic ns; < 0: none */
    int last;                  /* the deadline has passed: the final try */
    ps_park park;
};

/* Begin a wait of timeout_ns (< 0: no limit; 0: one try).  target is
 * borrowed here; Waiting objects hold their own reference. */
void ps_wait_init(ps_wait *w, ps_step step, PyObject *target, void *op, int64_t timeout_ns);

/* Run w in this thread until done: the new result reference, or NULL with an
 * exception (a signal handler raised, or the step failed).  Releases op. */
PyObject *ps_wait_block(ps_wait *w);

/* Wrap w (copied; target is referenced and op is released with the object)
 * as a Waiting: a generator-like object that yields (park, timeout) and
 * returns the result.  On failure releases op and returns NULL. */
PyObject *ps_waiting_new(const ps_wait *w);

extern PyTypeObject ps_WaitingType;

#endif
