/* Typed atomic views of memory inside a Mapping: Cell (one scalar) and
 * CellArray (a fixed-length vector).  Every access is one atomic operation on
 * a naturally aligned word; typecodes follow ctypes / multiprocessing. */
#ifndef PROCSHARE_CELL_H
#define PROCSHARE_CELL_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

extern PyTypeObject ps_CellType;
extern PyTypeObject ps_CellArrayType;

/* Size in bytes of one element of typecode, or -1 with ValueError set. */
Py_ssize_t ps_typecode_size(const char *typecode);

#endif
