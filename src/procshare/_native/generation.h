/* Generation: what a Dict or List handle keeps in C (its current table, that
 * table's generation, the root's generation word, the writers' lock), and
 * DictOps, the Dict's hot methods as one C call each: lock-free reads and
 * in-place int updates on the current table, a store under the lock, and the
 * Python layer for everything else (another generation, other encodings, a
 * full table); ListOps, the List's (l[i], len, append) alike. */
#ifndef PROCSHARE_GENERATION_H
#define PROCSHARE_GENERATION_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

extern PyTypeObject ps_GenerationType;
extern PyTypeObject ps_DictOpsType;
extern PyTypeObject ps_ListOpsType;
extern PyTypeObject ps_ListIterType;

/* The _place of obj, a Dict or List handle (borrowed: None unless it is a new
 * root whose Slot is not made, then (slots, index, fork epoch)), or NULL
 * (no exception) when obj is no such handle. */
PyObject *ps_generation_place(PyObject *obj);

/* Create the sentinels DictOps uses: 0, or -1 with an exception. */
int ps_generation_init(void);

#endif
