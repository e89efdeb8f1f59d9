/* Mutex: a lock word in a mapping that any process may take.  The word holds
 * the owner's pid; uncontended acquire and release are one atomic step each.
 * Waiters spin briefly, then sleep on the word with futex (counted, so that
 * release makes the wake-up syscall only when someone sleeps), and probe
 * the owner's liveness between bounded sleeps, so a holder killed by SIGKILL
 * is replaced within a probe interval.  The recursive flavour (RLock) also
 * records the owning thread and a recursion count. */
#ifndef PROCSHARE_MUTEX_H
#define PROCSHARE_MUTEX_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Bytes a mutex occupies in a segment (8-byte aligned). */
#define PS_MUTEX_SIZE 24

/* Bytes reserved for a lock in front of the data it guards: a cache line, so
 * that the lock word and the data do not share one. */
#define PS_LOCK_SPACE 64

/* How often a sleeper checks that the lock's owner still lives. */
#define PS_PROBE_NS 20000000

#include <stdatomic.h>
#include <stdint.h>

#include "wait.h"

typedef struct {
    _Atomic uint32_t word;    /* 0: free; else the owner's pid */
    _Atomic uint32_t waiters; /* sleepers on word: release wakes one only if non-zero */
    _Atomic uint32_t count;   /* recursion depth (recursive mutex) */
    uint32_t spare;
    _Atomic uint64_t thread; /* owning thread ident (recursive mutex), 0 if none */
} ps_mutex_layout;

extern PyTypeObject ps_MutexType;

/* Take the lock word for this process (the GIL held; it is released while
 * waiting).  timeout_ns < 0 waits without limit.  Returns 1 when acquired,
 * 0 on timeout, -1 with an exception set (a signal handler raised).  *died
 * is set when the previous owner was dead: what it protected may need repair. */
int ps_mutex_lock(ps_mutex_layout *m, int64_t timeout_ns, int *died);

/* One try at the word without waiting: take it if free, or, when the last
 * park timed out (woke == 0), take it over if its holder is dead (*died set).
 * Returns 1 when taken, else 0 with *park saying how to wait for it. */
int ps_mutex_try(ps_mutex_layout *m, int woke, int *died, ps_park *park);

/* Free the word; returns 0 if it was already free (and nothing changed). */
int ps_mutex_unlock(ps_mutex_layout *m);

/* acquire() and release() of a Mutex object (mutex is one), and its
 * owner_died flag, for C callers such as DictOps. */
PyObject *ps_mutex_enter(PyObject *mutex);
int ps_mutex_exit(PyObject *mutex);
int ps_mutex_died(PyObject *mutex);

/* What __exit__ returns once release() returned released: NULL (an error)
 * or False (exceptions are not swallowed).  Steals the reference. */
PyObject *ps_exit_result(PyObject *released);

/* Parse acquire(block=True, timeout=None) arguments (threading's "blocking"
 * and timeout=-1 accepted; a timeout with block=False is ignored): the timeout in ns, -1 for none,
 * -2 on error. */
int64_t ps_parse_acquire(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);

#endif
