/* Slots: the slot headers of one arena, as the process that made it uses
 * them.  Slot i starts at first + i * slot bytes of the arena's mapping: a
 * u32 word (generation << 1 | live), a u32 of PS_FLAG_* bits, then the
 * object's data.  The arena's own flag word (its segment header's) is at
 * flags_at: an arena unlinked unlinks every object in it.  Released slots go
 * on the free list the arena was made with. */
#ifndef PROCSHARE_SLOTS_H
#define PROCSHARE_SLOTS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Flag bits of a segment's or a slot's flag word. */
#define PS_FLAG_ESCAPED 1u  /* another process may use the name */
#define PS_FLAG_UNLINKED 2u /* the name was removed */
#define PS_SLOT_HEADER 8

extern PyTypeObject ps_SlotsType;

/* forking(): count a fork (called just before one); fork_epoch(): forks so far. */
PyObject *ps_forking_py(PyObject *module, PyObject *Py_UNUSED(ignored));
PyObject *ps_fork_epoch_py(PyObject *module, PyObject *Py_UNUSED(ignored));
uint64_t ps_fork_epoch(void);

/* take(free) -> (slots, index) or None: the last entry of free (a list of
 * (Slots, index) pairs, appended by release), removed and its slot claimed;
 * None when free is empty.  Atomic for threads: it runs no Python code. */
PyObject *ps_take_py(PyObject *module, PyObject *free);

/* The data of the object in slot index (an int) of slots (a Slots), and its
 * size in *size: NULL with an exception when there is no such slot. */
char *ps_slots_data(PyObject *slots, PyObject *index, Py_ssize_t *size);

/* Slots.release(index, epoch) of slots (a Slots), and whether the name of the
 * object in slot index, or the arena's, was removed: 1 or 0, or -1 with an
 * exception. */
int ps_slots_release(PyObject *slots, PyObject *const *args, Py_ssize_t nargs);
int ps_slots_unlinked(PyObject *slots, PyObject *index);

/* slot_name(arena, index, generation) -> str: the name of the object in slot
 * index of arena in that generation, "<arena>@<index>.<generation>". */
PyObject *ps_slot_name_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

/* The handle record (codec.c: kind, mode, name) of the object in slot index of
 * slots (a Slots), whose class's kind number is kind: its name handed out
 * from now on (escaped).  A new bytes object, or NULL with an exception. */
PyObject *ps_slots_record(PyObject *slots, PyObject *index, unsigned kind);

#endif
