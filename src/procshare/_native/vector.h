/* Vector: List's storage inside a mapping.  A slot array of offsets into a
 * heap of immutable (tag, bytes) entries, and a length published last.
 * Readers never lock: a slot is replaced with one atomic store, and append
 * stores the slot before the length.  Writers are serialised by the caller
 * (the List's robust lock); anything that moves elements builds a new
 * generation instead of shifting slots under readers. */
#ifndef PROCSHARE_VECTOR_H
#define PROCSHARE_VECTOR_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Bytes of the vector's header; slots and then the heap follow. */
#define PS_VECTOR_HEADER 64

extern PyTypeObject ps_VectorType;

#endif
