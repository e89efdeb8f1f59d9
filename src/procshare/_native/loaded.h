/* Loaded numbers: what reading `.value` returns, so that `v.value += n` is one step.
 *
 * A LoadedInt (an int) or LoadedFloat (a float) is the number it holds in every
 * respect, and also remembers the object it was read from (a source serial).
 * Adding or subtracting a number gives a pending change: the sum, marked with
 * the same source and the addend.  A setter that receives a pending change of
 * its own source applies the addend as one atomic add instead of storing the
 * sum; anything else is stored as the number it is. */
#ifndef PROCSHARE_LOADED_H
#define PROCSHARE_LOADED_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

extern PyTypeObject ps_LoadedIntType;
extern PyTypeObject ps_LoadedFloatType;

/* A fresh serial naming one source of loaded values (never 0, never reused). */
uint64_t ps_new_source(void);

/* x (an int within 64 bits, or a float) marked as read from source, or x itself
 * (a new reference) when it is another kind of object. */
PyObject *ps_loaded(PyObject *x, uint64_t source);
PyObject *ps_loaded_long(long long v, uint64_t source);
PyObject *ps_loaded_ulong(unsigned long long v, uint64_t source);
PyObject *ps_loaded_double(double v, uint64_t source);

/* The addend of x when x is a pending change of source (borrowed), else NULL. */
PyObject *ps_pending_addend(PyObject *x, uint64_t source);

PyObject *ps_new_source_py(PyObject *module, PyObject *unused);
PyObject *ps_loaded_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *ps_pending_addend_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

#endif
