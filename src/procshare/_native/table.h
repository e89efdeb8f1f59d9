/* Table: an open-addressing hash table inside a mapping, for Dict.
 *
 * Entries (canonical key bytes, stored key, value) are appended to a heap and
 * never changed afterwards (but an int value's word, see table.c); a slot holds the entry's offset
 * and part of its hash and is published with one atomic store.  So readers never lock and never see
 * a torn entry: they find the old entry or the new one.  Writers are serialised by the caller (the
 * Dict's robust lock).  A writer killed mid-way leaks heap space at worst; the slot store is its
 * only visible act. When slots or heap run out, the caller builds a bigger table (a new generation)
 * and copies the live entries. */
#ifndef PROCSHARE_TABLE_H
#define PROCSHARE_TABLE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Bytes of the table's header; slots and then the heap follow. */
#define PS_TABLE_HEADER 64

extern PyTypeObject ps_TableType;

/* The one-call paths of a Dict, as the Table methods of the same names
 * (lookup, store, put, incr, cas, delete) with table a Table: called by
 * DictOps. */
PyObject *ps_table_lookup(PyObject *table, PyObject *const *args, Py_ssize_t nargs);
PyObject *ps_table_store(PyObject *table, PyObject *const *args, Py_ssize_t nargs);
PyObject *ps_table_put(PyObject *table, PyObject *const *args, Py_ssize_t nargs);
PyObject *ps_table_incr(PyObject *table, PyObject *const *args, Py_ssize_t nargs);
PyObject *ps_table_cas(PyObject *table, PyObject *const *args, Py_ssize_t nargs);
PyObject *ps_table_delete(PyObject *table, PyObject *canon);

#endif
