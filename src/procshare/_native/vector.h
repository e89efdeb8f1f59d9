/* Vector: List's storage inside a mapping.  Two slot arrays of offsets into
 * a heap of immutable (tag, bytes) entries, and one state word (which array
 * is active, the length, a version).  Readers never lock: a slot is replaced
 * with one atomic store, append stores the slot before the length, and an
 * operation that moves elements writes the inactive array and then
 * publishes it with one store (readers that see the version change read
 * again).  Writers are serialised by the caller (the List's robust lock). */
#ifndef PROCSHARE_VECTOR_H
#define PROCSHARE_VECTOR_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Bytes of the vector's header; slots and then the heap follow. */
#define PS_VECTOR_HEADER 64

extern PyTypeObject ps_VectorType;

/* The one-call paths of a List, with vector a Vector, called by ListOps:
 * element i decoded (i < 0 counts from the end) or missing outside the list,
 * as the method value does, and the methods append, set and pop_last and
 * len(). */
PyObject *ps_vector_at(PyObject *vector, Py_ssize_t i, PyObject *missing);
PyObject *ps_vector_append(PyObject *vector, PyObject *const *args, Py_ssize_t nargs);
PyObject *ps_vector_set(PyObject *vector, PyObject *const *args, Py_ssize_t nargs);
PyObject *ps_vector_pop_last(PyObject *vector, PyObject *unused);
Py_ssize_t ps_vector_len(PyObject *vector);

/* Module function pack(values, encoded) -> (count, packed): see vector.c. */
PyObject *ps_pack_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

#endif
