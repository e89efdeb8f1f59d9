/* Semaphore: a counter in a mapping that acquire decrements (waiting while it
 * is zero) and release increments, with an optional maximum (bounded
 * semaphore).  A count has no owner: a process that dies holding a unit does
 * not give it back. */
#ifndef PROCSHARE_SEMAPHORE_H
#define PROCSHARE_SEMAPHORE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Bytes a semaphore occupies in a segment (4-byte aligned): value, waiters, maximum, spare. */
#define PS_SEMAPHORE_SIZE 16

/* The largest value a semaphore can hold. */
#define PS_SEMAPHORE_MAX 0x7fffffff

extern PyTypeObject ps_SemaphoreType;

#endif
