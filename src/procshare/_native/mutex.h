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

extern PyTypeObject ps_MutexType;

/* Parse acquire(block=True, timeout=None) arguments (threading's "blocking"
 * and timeout=-1 accepted; a timeout with block=False is ignored): the timeout in ns, -1 for none, -2 on error. */
int64_t ps_parse_acquire(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);

#endif
