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

#include <stdatomic.h>
#include <stdint.h>

/* The state every Dict and List handle keeps in C: its current table, the
 * generation that table belongs to, the root's generation word to compare
 * with, and the writers' lock; and the Python layer's words on where it is
 * held, None until set (its finalizer reads them however far construction
 * went). */
typedef struct {
    PyObject_HEAD
    PyObject *table;     /* _table: a Table (Dict) or Vector (List) */
    PyObject *lock;      /* _writers: the writers' RLock, a Mutex */
    PyObject *hold;      /* _hold: this process's place among the root's users */
    PyObject *place;     /* _place: a new root's (slots, index, fork epoch) */
    PyObject *root;      /* _root: the root's Segment, None until made */
    PyObject *table_seg; /* _table_seg: the current table's Segment, None: in the root's slot */
    PyObject *mapping;   /* keeps gen_word's mapping alive */
    _Atomic uint64_t *gen_word;
    unsigned long long gen; /* _gen */
    char fresh;             /* _fresh: built by __new__, its __init__ call still to come */
} ps_Generation;

extern PyTypeObject ps_GenerationType;

/* A new handle of type (a subclass of Generation) with nothing bound, out of
 * the cycle collector when the class is procshare's own; NULL with an
 * exception. */
ps_Generation *ps_generation_alloc(PyTypeObject *type);

/* The exception being raised, set aside while cleanup code runs, then raised
 * again (or, taken with none raised, nothing to put back). */
#if PY_VERSION_HEX >= 0x030C0000
typedef PyObject *ps_pending;
static inline ps_pending ps_pending_take(void)
{
    return PyErr_GetRaisedException();
}
static inline void ps_pending_restore(ps_pending p)
{
    PyErr_SetRaisedException(p);
}
#else
typedef struct {
    PyObject *type, *value, *tb;
} ps_pending;
static inline ps_pending ps_pending_take(void)
{
    ps_pending p;
    PyErr_Fetch(&p.type, &p.value, &p.tb);
    return p;
}
static inline void ps_pending_restore(ps_pending p)
{
    PyErr_Restore(p.type, p.value, p.tb);
}
#endif

/* untrack_ours(obj) (module.c): obj out of the cycle collector when its class
 * is procshare's own.  0, or -1 with an exception. */
int ps_untrack_ours(PyObject *obj);
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
