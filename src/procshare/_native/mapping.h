/* Mapping: one shared-memory segment mapped into this process.  It owns the
 * mapping (unmapped when the last reference, including buffer views, goes)
 * and hands out pointers only after checking them against its size. */
#ifndef PROCSHARE_MAPPING_H
#define PROCSHARE_MAPPING_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdatomic.h>
#include <stdint.h>

typedef struct {
    PyObject_HEAD
    char *base;
    Py_ssize_t size;
    PyObject *weakreflist;
} ps_Mapping;

extern PyTypeObject ps_MappingType;

/* Every type that views memory inside a mapping starts with PS_VIEW_HEAD: the
 * reference that keeps the mapping (and so the memory) alive. */
#define PS_VIEW_HEAD \
    PyObject_HEAD    \
    PyObject *mapping;

typedef struct {
    PS_VIEW_HEAD
} ps_View;

/* A new, zeroed instance of type (a view) holding a reference to mapping. */
PyObject *ps_view_new(PyTypeObject *type, PyObject *mapping);

/* tp_dealloc of every view type. */
void ps_view_dealloc(PyObject *self);

/* Pointer to [offset, offset + size) inside m, aligned to align bytes, or NULL
 * with an exception set when the range is outside the mapping or misaligned. */
char *ps_mapping_ptr(PyObject *m, Py_ssize_t offset, Py_ssize_t size, Py_ssize_t align);

/* The body (body bytes, 8-aligned) after a header of head bytes at offset, which
 * together may span at most place bytes (place < 0: no limit but the mapping's
 * end).  NULL with an exception, CorruptSegmentError for what (damaged memory)
 * when the header's geometry claims more than its place. */
char *ps_body_ptr(PyObject *m, Py_ssize_t offset, uint64_t head, uint64_t body, Py_ssize_t place,
                  const char *what);

/* The (mapping, offset[, size]) arguments of a table type's constructor (size
 * stays as given when absent), parsed without a format string: the path every
 * handle binding a table takes.  0, or -1 with a TypeError naming what. */
int ps_parse_place(PyObject *args, const char *what, PyObject **mapping, Py_ssize_t *offset,
                   Py_ssize_t *size);

/* Module-level functions defined beside the type. */
PyObject *ps_shm_open_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *ps_shm_unlink_py(PyObject *module, PyObject *arg);

/* Convert a Python timeout (None or seconds >= 0) to nanoseconds (-1 = none).
 * Returns -2 with an exception set on bad input. */
int64_t ps_timeout_ns(PyObject *timeout);

/* Park on word while it holds expected, for at most timeout_ns (negative: no
 * limit): spin up to spin_ns, then sleep (counted in *sleepers if not NULL)
 * in slices of at most PS_SLICE_NS, running signal handlers after each.  Call
 * with the GIL; it is released while waiting.  Returns 1 when the word
 * changed or a wake arrived (possibly spurious: re-check), 0 at the timeout,
 * -1 with an exception (a signal handler raised). */
int ps_park_checked(_Atomic uint32_t *word, uint32_t expected, int64_t timeout_ns, int64_t spin_ns,
                    _Atomic uint32_t *sleepers);

/* module.name, imported on first use and kept in *cache (a borrowed
 * reference), or NULL with an exception: how the core reaches the Python
 * layer on its rare paths. */
PyObject *ps_python_attr(const char *module, const char *name, PyObject **cache);

/* Raise procshare.CorruptSegmentError: "the <what>'s memory is damaged
 * (<why>)".  Returns NULL. */
PyObject *ps_damaged(const char *what, const char *why);

/* Fill out[0..n) from positional args, then keywords named names (METH_FASTCALL |
 * METH_KEYWORDS arguments); out[i] stays NULL when not given.  0, or -1 with a
 * TypeError naming sig. */
int ps_parse_args(const char *sig, const char *const *names, int n, PyObject *const *args,
                  Py_ssize_t nargs, PyObject *kwnames, PyObject **out);

/* PyLong to C int with an OverflowError outside int's range. */
int ps_as_int(PyObject *obj);

#endif
