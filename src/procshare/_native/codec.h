/* Encodings shared by Queue, Dict and List storage and their Python layer. */
#ifndef PROCSHARE_CODEC_H
#define PROCSHARE_CODEC_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

/* Value tags (procshare._shm.keys): bytes, pickled, UTF-8 str, int, and a
 * procshare object's handle (kind byte, mode as 2 little-endian bytes, name). */
enum { TAG_BYTES = 0, TAG_PICKLED = 1, TAG_STR = 2, TAG_INT = 3, TAG_HANDLE = 4 };

/* The ints stored as TAG_INT (8 bytes, little-endian): 63-bit ones, so that a
 * Dict can keep one in a word beside a flag bit and update it in place; wider
 * ints are pickled. */
#define PS_INT_MAX (((int64_t)1 << 62) - 1)
#define PS_INT_MIN (-((int64_t)1 << 62))

/* The value stored as (tag, bytes), or NULL with an exception. */
PyObject *ps_decode_value(uint32_t tag, const char *data, uint64_t len);

/* A value of an exact bytes, str or 63-bit int type as (tag, pointer, length):
 * 1 done (an int is written to int_buf), 0 when it must be pickled (no error). */
int ps_encode_fast(PyObject *value, uint32_t *tag, const char **data, Py_ssize_t *len,
                   char int_buf[8]);

/* A value encoded for storage; owned (the pickle) is released with ps_encoded_done. */
typedef struct {
    uint32_t tag;
    const char *data;
    Py_ssize_t len;
    char int_buf[8];
    PyObject *owned;
} ps_encoded;

/* Encode any value: simple types as they are, anything else pickled.  0, or
 * -1 with the pickling error set.  data points into value, int_buf or owned. */
int ps_encode(PyObject *value, ps_encoded *out);

static inline void ps_encoded_done(ps_encoded *e)
{
    Py_CLEAR(e->owned);
}

/* The canonical bytes of an exact str, bytes or int key, written to buf (cap
 * bytes) or to a PyMem block returned in *heap_copy (free it).  Returns the
 * length, -1 when the key needs the general encoder (no error set), or -2
 * with an exception. */
/* Whether value is of a type ps_encode_fast encodes (exact bytes, str or
 * int); it may still refuse one (lone surrogates, an int beyond 64 bits). */
static inline int ps_fast_type(PyObject *value)
{
    return PyBytes_CheckExact(value) || PyUnicode_CheckExact(value) || PyLong_CheckExact(value);
}

/* v's decimal digits, as "%lld" writes them, into out (room for 20): their count. */
int ps_decimal(char *out, long long v);

Py_ssize_t ps_canon_fast(PyObject *key, char *buf, Py_ssize_t cap, char **out, char **heap_copy);

/* The canonical bytes of any key: equal for keys that are equal in a dict, in
 * every process.  None, bool, int, float and complex (equal numbers alike),
 * str, bytes, and tuples and frozensets of these are encoded exactly; any
 * other hashable key by its pickle (such keys meet when they pickle alike).
 * TypeError for an unhashable key.  A new bytes object, or NULL. */
PyObject *ps_canonical(PyObject *key);

/* set_handles(shared, recorded, rebuild): instances of shared are stored as
 * TAG_HANDLE records of obj._handle()'s (kind, name, mode) where
 * recorded(type(obj)) gives (kind number, plain) with a number (0: pickled;
 * plain false: pickled too when obj._handle_args() is not empty), and
 * rebuild(kind, name, mode) gives them back. */
PyObject *ps_set_handles_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

/* Module functions: decode_value(tag, data), encode_value(value), canonical(key). */
PyObject *ps_decode_value_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *ps_encode_value_py(PyObject *module, PyObject *value);
PyObject *ps_canonical_py(PyObject *module, PyObject *key);

/* encode_item(key, value) -> (canonical key, key pickle or b"" when the canonical
 * bytes give the key back, value tag, value bytes): everything a Dict stores,
 * encoded in one call, before its lock is taken. */
PyObject *ps_encode_item_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

/* redis_encode(values) -> [bytes] and redis_decode(raws) -> [values]: the Redis back end's
 * form of the value encoding (an int as its decimal digits, else the tag byte and the
 * bytes), for a whole batch in one call. */
PyObject *ps_redis_encode_py(PyObject *module, PyObject *values);
PyObject *ps_redis_decode_py(PyObject *module, PyObject *raws);

#endif
