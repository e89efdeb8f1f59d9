/* A Dict's or List's root in an arena slot, made and let go of in one call
 * each: its first table, its first user (this process) and its token written
 * into a slot taken from the pool's free list, the handle registered among
 * the roots this process holds; and, when that one handle is collected before
 * it made a Slot, the slot freed or this process's users entry cleared.  Also
 * the tokens that name every root's tables. */
#ifndef PROCSHARE_ROOTS_H
#define PROCSHARE_ROOTS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "mutex.h"

/* A root's data: the writers' lock, the generation word, the count of users
 * beyond the table (u32, in 8 bytes), then the users' pids (u32 each, 0 when
 * free).  A root in an arena slot has SLOT_USERS of them, then its token (a
 * u64, in 16 bytes), then its first table. */
#define PS_ROOT_GEN PS_LOCK_SPACE
#define PS_ROOT_OVERFLOW (PS_ROOT_GEN + 8)
#define PS_ROOT_USERS (PS_ROOT_GEN + 16)
#define PS_SLOT_USERS 8
#define PS_ROOT_TOKEN (PS_ROOT_USERS + 4 * PS_SLOT_USERS)
#define PS_ROOT_INLINE (PS_ROOT_TOKEN + 16)

/* hold_roots(held, pools, drop): the Python layer's roots held by this
 * process (dict: place -> None or its hold), its pools of slots (dict: key ->
 * pool, never rebound) and drop(place), which removes the tables of a new
 * root whose name was unlinked. */
PyObject *ps_hold_roots_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

/* A new empty cls object (a Dict or List class) in a slot of its pool, or
 * None when the pool has no free slot at hand (or none is made yet); NULL
 * with an exception.  cls._blank is (pool key, init, args), the first table
 * written by init(mapping, offset, *args). */
PyObject *ps_new_root(PyObject *cls);

/* root_in_slot(cls, slots, index, init) -> a new cls object in the claimed
 * slot index of slots, its first table written by init(mapping, offset); the
 * slot is released if that fails. */
PyObject *ps_root_in_slot_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

/* leave_new(place, pid, user) -> bool: process pid lets go of the new root at
 * place as its user number user (-1: counted beyond the table): the slot
 * freed if no other process may know it, else the entry cleared.  Whether the
 * root's name was unlinked (its tables are then to be dropped). */
PyObject *ps_leave_new_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

/* The one handle of the new root at place was collected before it made a
 * Slot: this process lets go of it (held's entry removed, then as leave_new,
 * drop(place) called if it was unlinked; a forked child's hold leaves).  0,
 * or -1 with an exception. */
int ps_root_gone(PyObject *place);

/* token_number() -> int: a fresh, unpredictable 64-bit token, drawn from the
 * system's CSPRNG 32 at a time (a forked child draws its own). */
PyObject *ps_token_number_py(PyObject *module, PyObject *Py_UNUSED(ignored));

#endif
