#include "table.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "mapping.h"
#include "park.h"

typedef struct {
    uint64_t nslots;             /* a power of two */
    uint64_t heap_size;          /* bytes */
    _Atomic uint64_t heap_used;  /* bytes appended so far (bumped before publication) */
    _Atomic uint64_t count;      /* live entries */
    _Atomic uint64_t used_slots; /* slots ever filled (live + tombstones) */
    _Atomic uint64_t garbage;    /* heap bytes of replaced or deleted entries */
    _Atomic uint64_t next_order; /* insertion order of the next new key */
    uint64_t spare;
} ps_table_layout;

_Static_assert(sizeof(ps_table_layout) == PS_TABLE_HEADER, "table header size");

/* An entry in the heap: this header, then canon and key bytes, padded to 8,
 * then the value bytes, padded to 8.  Entries never change once published,
 * except the value of an int entry (TAG_INT): an 8-byte word, the value times
 * two plus a flag bit, FROZEN, that stops in-place updates, followed by an
 * 8-byte shadow.  Lock-free incr adds to an unfrozen word with one fetch-add
 * (compare_and_set swaps it); a writer holding the lock freezes an int entry
 * before it replaces, deletes or copies it, so no in-place update lands on an
 * entry that is no longer current.  Freezing writes the value into the shadow,
 * then sets the flag with a compare-and-swap from that very word: a frozen
 * word's value is its shadow's.  An incr whose add lands on a frozen word
 * leaves it there and takes the general path; the word's bits are garbage
 * from then on, and nothing reads them until a lock holder stores a whole
 * word again (an int over an int, a thaw).  A process killed anywhere in incr
 * has added to a live word (and counted) or not at all (or into a frozen word's
 * bits, which is the same).
 *
 * In-place words hold values within +-SAFE: an int beyond it is stored frozen
 * (its shadow holds it, and updates take the lock).  A fetch-add cannot check
 * the range first, so a process adds only while the value it last saw is
 * within SAFE and n within XADD_MAX: each process handle overshoots SAFE at
 * most once, far from the 63-bit limit. */
typedef struct {
    uint32_t canon_len;
    uint32_t key_len;
    uint32_t value_len;
    uint32_t value_tag;
    uint64_t order;
    uint64_t hash;
} ps_entry;

#define EMPTY 0u
#define TOMB 1u
#define ALIGN8(n) (((n) + 7) & ~(uint64_t)7)
#define HEAP_START 16 /* entries start at offset 16, so a slot value is never EMPTY or TOMB */

/* 64-bit hash of bytes, the same in every process and run. */
static uint64_t ps_hash_bytes(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a, then a splitmix64 finaliser */
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3u;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9u;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebu;
    h ^= h >> 31;
    return h;
}

typedef struct {
    PS_VIEW_HEAD
    ps_table_layout *t;
    _Atomic uint64_t *slots;
    char *heap;
    uint64_t nslots, heap_size;
    /* The last key incr or cas found an int word for, that word, and the word as this
     * process last saw it (so that cas can tell a loss to another process from a
     * plain mismatch): the next call with the same key object goes straight to the
     * word, touching neither the slots nor the entry's header (under contention, only
     * the word's line moves between cores).  A word stays that key's until a writer
     * freezes it, which sends the caller to the general path and clears this; reads
     * of the key take the unfrozen word too. */
    PyObject *hot_key;
    _Atomic uint64_t *hot_word;
    uint64_t hot_seen;
    uint32_t backoff; /* the longest pause (ns) after this process's last lost cas */
    uint32_t rng;     /* xorshift state for the pauses (0: not seeded yet) */
} ps_Table;

static void Table_dealloc(PyObject *self)
{
    Py_CLEAR(((ps_Table *)self)->hot_key);
    ps_view_dealloc(self);
}

static int check_geometry(uint64_t nslots, uint64_t heap_size)
{
    if (nslots < 8 || (nslots & (nslots - 1)) != 0 || nslots > ((uint64_t)1 << 40) ||
        heap_size < 64 || heap_size % 8 != 0 || heap_size > ((uint64_t)8 << 32)) {
        ps_damaged("dict", "geometry");
        return -1;
    }
    return 0;
}

/* Table(mapping, offset[, size]): the table whose header is at offset, which
 * may span size bytes from there (by default, to the end of the mapping: a
 * table in an arena slot is confined to its slot). */
static PyObject *Table_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)kwds;
    PyObject *mapping;
    Py_ssize_t offset, size = -1;
    if (ps_parse_place(args, "Table", &mapping, &offset, &size) < 0)
        return NULL;
    ps_table_layout *t = (ps_table_layout *)ps_mapping_ptr(mapping, offset, PS_TABLE_HEADER, 8);
    if (t == NULL)
        return NULL;
    uint64_t nslots = t->nslots, heap_size = t->heap_size;
    if (check_geometry(nslots, heap_size) < 0)
        return NULL;
    char *p = ps_body_ptr(mapping, offset, PS_TABLE_HEADER, nslots * 8 + heap_size, size, "dict");
    if (p == NULL)
        return NULL;
    ps_Table *self = (ps_Table *)ps_view_new(type, mapping);
    if (self == NULL)
        return NULL;
    self->t = t;
    self->slots = (_Atomic uint64_t *)p;
    self->heap = p + nslots * 8;
    self->nslots = nslots;
    self->heap_size = heap_size;
    return (PyObject *)self;
}

/* init(mapping, offset, nslots, heap_size, next_order): lay out an empty table. */
static PyObject *Table_init(PyObject *cls, PyObject *const *args, Py_ssize_t nargs)
{
    (void)cls;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "init(mapping, offset, nslots, heap_size, next_order)");
        return NULL;
    }
    Py_ssize_t offset = PyNumber_AsSsize_t(args[1], PyExc_OverflowError);
    unsigned long long nslots = PyLong_AsUnsignedLongLong(args[2]);
    unsigned long long heap = PyLong_AsUnsignedLongLong(args[3]);
    unsigned long long order = PyLong_AsUnsignedLongLong(args[4]);
    if (PyErr_Occurred() || check_geometry(nslots, heap) < 0)
        return NULL;
    if (ps_mapping_ptr(args[0], offset + PS_TABLE_HEADER, (Py_ssize_t)(nslots * 8 + heap), 8) ==
        NULL)
        return NULL;
    ps_table_layout *t = (ps_table_layout *)ps_mapping_ptr(args[0], offset, PS_TABLE_HEADER, 8);
    if (t == NULL)
        return NULL;
    t->nslots = nslots;
    t->heap_size = heap;
    atomic_store(&t->heap_used, HEAP_START);
    atomic_store(&t->next_order, order);
    Py_RETURN_NONE;
}

/* Whether an entry of this tag and value length is an int word (and its shadow). */
static int is_word(uint32_t tag, uint64_t value_len)
{
    return tag == TAG_INT && value_len == 8;
}

/* Bytes an entry of these lengths takes in the heap. */
static uint64_t entry_bytes(uint64_t canon_len, uint64_t key_len, uint64_t value_len, uint32_t tag)
{
    return sizeof(ps_entry) + ALIGN8(canon_len + key_len) + ALIGN8(value_len) +
           (is_word(tag, value_len) ? 8 : 0);
}

static uint64_t entry_size(const ps_entry *e)
{
    return entry_bytes(e->canon_len, e->key_len, e->value_len, e->value_tag);
}

/* The entry a slot value points to, or NULL if it points outside the heap. */
static ps_entry *entry_of(ps_Table *self, uint64_t slot)
{
    uint64_t off = (slot & 0xffffffffu) * 8;
    if (off < HEAP_START || off > self->heap_size - sizeof(ps_entry))
        return NULL;
    ps_entry *e = (ps_entry *)(self->heap + off);
    if (entry_size(e) > self->heap_size - off)
        return NULL;
    return e;
}

#define CANON(e) ((const char *)(e) + sizeof(ps_entry))
#define KEY(e) (CANON(e) + (e)->canon_len)
#define VALUE(e) (CANON(e) + ALIGN8((uint64_t)(e)->canon_len + (e)->key_len))

#define FROZEN 1u
#define SAFE ((int64_t)1 << 61)     /* in-place words hold values within +-SAFE */
#define XADD_MAX ((int64_t)1 << 20) /* the largest n an incr adds blindly */

/* The word of an int entry (its value is 8-aligned: entries and their value
 * offsets are; its shadow follows it), or NULL for any other entry. */
static _Atomic uint64_t *int_word(const ps_entry *e)
{
    return is_word(e->value_tag, e->value_len) ? (_Atomic uint64_t *)VALUE(e) : NULL;
}

static _Atomic uint64_t *shadow_of(_Atomic uint64_t *w)
{
    return w + 1;
}

static uint64_t word_of(int64_t v)
{
    return (uint64_t)v << 1;
}

static int64_t as_signed(uint64_t u)
{
    int64_t v;
    memcpy(&v, &u, sizeof v); /* two's complement, as every supported target */
    return v;
}

static int64_t value_of_word(uint64_t w)
{
    return as_signed(w & ~(uint64_t)FROZEN) / 2; /* exact: the rest is even */
}

static int in_place(int64_t v)
{
    return v >= -SAFE && v <= SAFE;
}

/* The value of int word w, read once: a frozen word's is its shadow's. */
static int64_t word_value(_Atomic uint64_t *w)
{
    uint64_t word = atomic_load(w);
    return word & FROZEN ? as_signed(atomic_load(shadow_of(w))) : value_of_word(word);
}

/* Freeze w (the caller holds the lock): the shadow takes the value, then the
 * flag is set by a swap from the word the shadow was taken from, so no add
 * slips in between.  Returns the value, which stands until a store. */
static int64_t freeze_word(_Atomic uint64_t *w)
{
    uint64_t seen = atomic_load(w);
    while (!(seen & FROZEN)) {
        atomic_store(shadow_of(w), (uint64_t)value_of_word(seen));
        if (atomic_compare_exchange_weak(w, &seen, seen | FROZEN))
            return value_of_word(seen);
    }
    return as_signed(atomic_load(shadow_of(w)));
}

/* Store v into w as a whole word (the caller holds the lock, or w is not yet
 * published): in place when v is within SAFE, else frozen with v in the shadow.
 * Whatever a landed add left in a frozen word is overwritten. */
static void store_word(_Atomic uint64_t *w, int64_t v)
{
    if (in_place(v)) {
        atomic_store(w, word_of(v));
        return;
    }
    atomic_store(shadow_of(w), (uint64_t)v);
    atomic_store(w, word_of(v) | FROZEN);
}

/* The 8 little-endian bytes TAG_INT values travel as. */
static void int_bytes(int64_t v, char out[8])
{
    uint64_t u = (uint64_t)v;
    for (int i = 0; i < 8; i++, u >>= 8)
        out[i] = (char)(u & 0xff);
}

static int64_t int_from_bytes(const char *p)
{
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--)
        u = (u << 8) | (unsigned char)p[i];
    return as_signed(u);
}

/* The value bytes of e: an int's word read once, atomically, into buf (and
 * with freeze, frozen by the same instruction: the caller holds the lock and
 * the value stands from now on), else the entry's own bytes. */
static const char *entry_value_as(const ps_entry *e, char buf[8], int freeze)
{
    _Atomic uint64_t *w = int_word(e);
    if (w == NULL)
        return VALUE(e);
    int_bytes(freeze ? freeze_word(w) : word_value(w), buf);
    return buf;
}

#define entry_value(e, buf) entry_value_as((e), (buf), 0)
#define entry_freeze(e, buf) entry_value_as((e), (buf), 1)

/* Find canon: returns the slot index holding it, or -1; *free_slot gets the
 * first tombstone or empty slot seen (-1 if the table is full of others).
 * Lock-free: every slot is read with one atomic load. */
static int64_t probe(ps_Table *self, const char *canon, uint32_t len, uint64_t h,
                     int64_t *free_slot, int *damaged, ps_entry **found)
{
    uint64_t mask = self->nslots - 1;
    uint32_t tag = (uint32_t)(h >> 32);
    *free_slot = -1;
    *damaged = 0;
    for (uint64_t n = 0, i = h & mask; n < self->nslots; n++, i = (i + 1) & mask) {
        uint64_t s = atomic_load_explicit(&self->slots[i], memory_order_acquire);
        if (s == EMPTY) {
            if (*free_slot < 0)
                *free_slot = (int64_t)i;
            return -1;
        }
        if (s == TOMB) {
            if (*free_slot < 0)
                *free_slot = (int64_t)i;
            continue;
        }
        if ((uint32_t)(s >> 32) != tag)
            continue;
        ps_entry *e = entry_of(self, s);
        if (e == NULL) {
            *damaged = 1;
            return -1;
        }
        if (e->hash == h && e->canon_len == len && memcmp(CANON(e), canon, len) == 0) {
            *found = e;
            return (int64_t)i;
        }
    }
    return -1;
}

static PyObject *damaged_error(void)
{
    return ps_damaged("dict", "entries");
}

/* (tag, value bytes) of e, from value (VALUE(e), or a copy of an int's word). */
static PyObject *value_of(const ps_entry *e, const char *value)
{
    PyObject *v = PyBytes_FromStringAndSize(value, e->value_len);
    return v == NULL ? NULL : Py_BuildValue("(IN)", e->value_tag, v);
}

/* Find the entry for canon (a bytes object): its slot index (-1: absent, -2:
 * error set) and the entry in *found. */
static int64_t find(ps_Table *self, PyObject *canon, const char *what, ps_entry **found)
{
    if (!PyBytes_Check(canon)) {
        PyErr_Format(PyExc_TypeError, "%s(canon: bytes)", what);
        return -2;
    }
    const char *c = PyBytes_AS_STRING(canon);
    uint32_t len = (uint32_t)PyBytes_GET_SIZE(canon);
    int64_t free_slot;
    int damaged;
    int64_t i = probe(self, c, len, ps_hash_bytes((const unsigned char *)c, len), &free_slot,
                      &damaged, found);
    if (damaged) {
        damaged_error();
        return -2;
    }
    return i;
}

/* (tag, value bytes) of canon's entry or None; with freeze, frozen too. */
static PyObject *value_for(ps_Table *self, PyObject *canon, const char *what, int freeze)
{
    ps_entry *e = NULL;
    int64_t i = find(self, canon, what, &e);
    if (i == -2)
        return NULL;
    if (i < 0)
        Py_RETURN_NONE;
    char buf[8];
    return value_of(e, entry_value_as(e, buf, freeze)); /* whole even if replaced since */
}

/* Find key, an exact str, bytes or int (encoded here, without Python): 1 with
 * the entry in *found, 0 absent, -1 when the key needs the general encoding
 * (no error), -2 with an exception.  Lock-free. */
static int find_key(ps_Table *self, PyObject *key, ps_entry **found)
{
    char buf[256], *canon, *heap_copy;
    Py_ssize_t n = ps_canon_fast(key, buf, sizeof buf, &canon, &heap_copy);
    if (n < 0)
        return (int)n;
    int64_t free_slot;
    int damaged;
    int64_t i =
        probe(self, canon, (uint32_t)n, ps_hash_bytes((const unsigned char *)canon, (size_t)n),
              &free_slot, &damaged, found);
    PyMem_Free(heap_copy);
    if (damaged) {
        damaged_error();
        return -2;
    }
    return i >= 0;
}

/* get(canon) -> (tag, value bytes) or None.  Lock-free. */
static PyObject *Table_get(ps_Table *self, PyObject *canon)
{
    return value_for(self, canon, "get", 0);
}

/* lookup(key, missing, slow) -> the decoded value, missing when absent, or
 * slow when the key is not an exact str, bytes or int (then use get() with
 * the general encoding).  Lock-free: one call for the common read. */
PyObject *ps_table_lookup(PyObject *table, PyObject *const *args, Py_ssize_t nargs)
{
    ps_Table *self = (ps_Table *)table;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "lookup(key, missing, slow)");
        return NULL;
    }
    if (args[0] == self->hot_key) {
        uint64_t word = atomic_load(self->hot_word);
        if (!(word & FROZEN)) {
            self->hot_seen = word;
            return PyLong_FromLongLong(value_of_word(word)); /* the key's current value */
        }
    }
    ps_entry *e = NULL;
    int r = find_key(self, args[0], &e);
    if (r < 0)
        return r == -1 ? Py_NewRef(args[2]) : NULL;
    if (r == 0)
        return Py_NewRef(args[1]);
    _Atomic uint64_t *w = int_word(e);
    if (w != NULL)
        return PyLong_FromLongLong(word_value(w));
    return ps_decode_value(e->value_tag, VALUE(e), e->value_len);
}

/* The bytes of one entry to insert. */
typedef struct {
    const char *canon, *key, *value;
    uint64_t canon_len, key_len, value_len, hash;
    uint32_t tag;
} ps_item;

/* Insert or replace item (the caller holds the dict's lock): 1 new key, 0
 * replaced, -1 no room (slots or heap), -2 damaged memory, -3 an int item
 * that is not 8 bytes of a 63-bit value.  An int replacing an int is stored
 * in place; any other entry replaced is frozen first. */
static int table_insert(ps_Table *self, const ps_item *it)
{
    ps_table_layout *t = self->t;
    int64_t v = 0;
    if (it->tag == TAG_INT) {
        if (it->value_len != 8)
            return -3;
        v = int_from_bytes(it->value);
        if (v < PS_INT_MIN || v > PS_INT_MAX)
            return -3;
    }
    int64_t free_slot;
    int damaged;
    ps_entry *old = NULL;
    int64_t i =
        probe(self, it->canon, (uint32_t)it->canon_len, it->hash, &free_slot, &damaged, &old);
    if (damaged)
        return -2;
    _Atomic uint64_t *old_word = old ? int_word(old) : NULL;
    if (old_word != NULL && it->tag == TAG_INT) {
        store_word(old_word, v); /* unfrozen, unless v is beyond SAFE */
        return 0;
    }
    uint64_t need = entry_bytes(it->canon_len, it->key_len, it->value_len, it->tag);
    uint64_t used = atomic_load(&t->heap_used);
    if (used < HEAP_START || used % 8 != 0 || used > self->heap_size)
        return -2;
    if (need > self->heap_size - used)
        return -1;
    uint64_t target;
    if (i >= 0)
        target = (uint64_t)i;
    else {
        /* Keep the load (live + tombstones) under 3/4 so probes stay short. */
        int fresh = free_slot < 0 || atomic_load(&self->slots[free_slot]) == EMPTY;
        if (free_slot < 0 || (fresh && (atomic_load(&t->used_slots) + 1) * 4 > self->nslots * 3))
            return -1;
        target = (uint64_t)free_slot;
    }
    ps_entry *e = (ps_entry *)(self->heap + used);
    e->canon_len = (uint32_t)it->canon_len;
    e->key_len = (uint32_t)it->key_len;
    e->value_len = (uint32_t)it->value_len;
    e->value_tag = it->tag;
    e->order = old ? old->order : atomic_fetch_add(&t->next_order, 1);
    e->hash = it->hash;
    char *body = (char *)e + sizeof(ps_entry);
    memcpy(body, it->canon, it->canon_len);
    memcpy(body + it->canon_len, it->key, it->key_len);
    _Atomic uint64_t *word = int_word(e);
    if (word != NULL)
        store_word(word, v); /* published below */
    else
        memcpy((char *)VALUE(e), it->value, it->value_len);
    /* Claim the space before publishing, so a writer killed between the two
     * leaks the entry instead of letting the next writer overwrite it. */
    atomic_store(&t->heap_used, used + need);
    if (old_word != NULL)
        freeze_word(old_word);
    uint64_t was = atomic_load(&self->slots[target]);
    atomic_store_explicit(&self->slots[target],
                          ((it->hash >> 32) << 32) | ((used / 8) & 0xffffffffu),
                          memory_order_release);
    if (old) {
        atomic_fetch_add(&t->garbage, entry_size(old));
        return 0;
    }
    atomic_fetch_add(&t->count, 1);
    if (was == EMPTY)
        atomic_fetch_add(&t->used_slots, 1);
    return 1;
}

/* table_insert's result as Python's: the int, or NULL with an exception. */
static PyObject *insert_result(int r)
{
    if (r == -2)
        return damaged_error();
    if (r == -3) {
        PyErr_SetString(PyExc_ValueError, "an int value must be 8 bytes of a 63-bit int");
        return NULL;
    }
    return PyLong_FromLong(r);
}

/* put(canon, key, tag, value) -> 1 new key, 0 replaced, -1 full (grow and
 * retry).  The caller holds the dict's lock. */
PyObject *ps_table_put(PyObject *table, PyObject *const *args, Py_ssize_t nargs)
{
    ps_Table *self = (ps_Table *)table;
    if (nargs != 4 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[1]) ||
        !PyBytes_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "put(canon: bytes, key: bytes, tag: int, value: bytes)");
        return NULL;
    }
    unsigned long tag = PyLong_AsUnsignedLong(args[2]);
    if (tag == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    ps_item it = {PyBytes_AS_STRING(args[0]),
                  PyBytes_AS_STRING(args[1]),
                  PyBytes_AS_STRING(args[3]),
                  (uint64_t)PyBytes_GET_SIZE(args[0]),
                  (uint64_t)PyBytes_GET_SIZE(args[1]),
                  (uint64_t)PyBytes_GET_SIZE(args[3]),
                  0,
                  (uint32_t)tag};
    if (it.canon_len > UINT32_MAX || it.key_len > UINT32_MAX || it.value_len > UINT32_MAX ||
        tag > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "key or value larger than 4 GiB");
        return NULL;
    }
    it.hash = ps_hash_bytes((const unsigned char *)it.canon, it.canon_len);
    return insert_result(table_insert(self, &it));
}

/* store(key, value, slow) -> 1 new key, 0 replaced, -1 full (grow, then use
 * put), or slow when key or value needs the general encoding.  The caller
 * holds the dict's lock.  One call for the common write. */
PyObject *ps_table_store(PyObject *table, PyObject *const *args, Py_ssize_t nargs)
{
    ps_Table *self = (ps_Table *)table;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "store(key, value, slow)");
        return NULL;
    }
    char buf[256], *canon, *heap_copy, int_buf[8];
    ps_item it = {0};
    Py_ssize_t vlen;
    if (!ps_encode_fast(args[1], &it.tag, &it.value, &vlen, int_buf))
        return Py_NewRef(args[2]);
    Py_ssize_t n = ps_canon_fast(args[0], buf, sizeof buf, &canon, &heap_copy);
    if (n == -2)
        return NULL;
    if (n == -1)
        return Py_NewRef(args[2]);
    it.canon = canon;
    it.canon_len = (uint64_t)n;
    it.key = "";
    it.value_len = (uint64_t)vlen;
    it.hash = ps_hash_bytes((const unsigned char *)canon, (size_t)n);
    int r = it.canon_len > UINT32_MAX || it.value_len > UINT32_MAX ? -4 : table_insert(self, &it);
    PyMem_Free(heap_copy);
    if (r == -4) {
        PyErr_SetString(PyExc_OverflowError, "key or value larger than 4 GiB");
        return NULL;
    }
    return insert_result(r);
}

/* An exact int argument within the 63-bit range, or 0 (no error) for anything else. */
static int small_int(PyObject *obj, int64_t *out)
{
    if (!PyLong_CheckExact(obj))
        return 0;
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow || (v == -1 && PyErr_Occurred()) || v < PS_INT_MIN || v > PS_INT_MAX) {
        PyErr_Clear();
        return 0;
    }
    *out = v;
    return 1;
}

/* The unfrozen int word of key's entry (key: an exact str, bytes or int), or
 * NULL: *slow set when the general path must decide, else an exception. */
static _Atomic uint64_t *word_for(ps_Table *self, PyObject *key, int *slow)
{
    if (key == self->hot_key) {
        *slow = 0;
        return self->hot_word;
    }
    ps_entry *e = NULL;
    int r = find_key(self, key, &e);
    *slow = r == -1;
    if (r < 0)
        return NULL;
    _Atomic uint64_t *w = r == 0 ? NULL : int_word(e);
    *slow = w == NULL;
    if (w != NULL) {
        Py_XSETREF(self->hot_key, Py_NewRef(key));
        self->hot_word = w;
        self->hot_seen = atomic_load(w);
    }
    return w;
}

/* The general path decides for key: forget its word (a writer froze it). */
static PyObject *cooled(ps_Table *self, PyObject *slow)
{
    Py_CLEAR(self->hot_key);
    self->hot_word = NULL;
    return Py_NewRef(slow);
}

/* The arguments of incr and cas: (key, int..., slow) with nints exact 63-bit
 * ints after the key, into ints.  The int word of key's entry; NULL with
 * *slow set (take the general path: return args[nargs - 1]), or NULL with an
 * exception. */
static _Atomic uint64_t *word_args(ps_Table *self, const char *sig, PyObject *const *args,
                                   Py_ssize_t nargs, int64_t *ints, int nints, int *slow)
{
    *slow = 0;
    if (nargs != nints + 2) {
        PyErr_SetString(PyExc_TypeError, sig);
        return NULL;
    }
    for (int k = 0; k < nints; k++)
        if (!small_int(args[1 + k], &ints[k])) {
            *slow = 1;
            return NULL;
        }
    return word_for(self, args[0], slow);
}

/* incr(key, n, slow) -> the new value, updated in place without a lock, or
 * slow: the key is absent, not of an exact str, bytes or int type, its value
 * is not an int, the sum leaves +-SAFE, or a writer froze the entry.  One
 * fetch-add when the value this process last saw is within SAFE and n within
 * XADD_MAX (under contention, one move of the word's line per increment),
 * else a compare-and-swap loop that checks the range first. */
PyObject *ps_table_incr(PyObject *table, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t n, sum;
    int slow;
    _Atomic uint64_t *w =
        word_args((ps_Table *)table, "incr(key, n, slow)", args, nargs, &n, 1, &slow);
    if (w == NULL)
        return slow ? Py_NewRef(args[nargs - 1]) : NULL;
    ps_Table *self = (ps_Table *)table;
    if (n >= -XADD_MAX && n <= XADD_MAX && in_place(value_of_word(self->hot_seen))) {
        uint64_t was = atomic_fetch_add(w, word_of(n));
        if (was & FROZEN)
            return cooled(self, args[2]); /* the add is garbage in a retired word */
        self->hot_seen = was + word_of(n);
        return PyLong_FromLongLong(value_of_word(was) + n); /* within SAFE + overshoots */
    }
    uint64_t seen = atomic_load(w);
    do {
        if (seen & FROZEN)
            return cooled(self, args[2]);
        if (__builtin_add_overflow(value_of_word(seen), n, &sum) || !in_place(sum))
            return Py_NewRef(args[2]);
    } while (!atomic_compare_exchange_weak(w, &seen, word_of(sum)));
    self->hot_seen = word_of(sum);
    return PyLong_FromLongLong(sum);
}

/* The longest pause, in nanoseconds, of a compare_and_set that lost (a build may
 * set another with -DPS_CAS_BACKOFF_NS=..., 0 for none, to measure what it buys
 * on a machine). */
#ifndef PS_CAS_BACKOFF_NS
#define PS_CAS_BACKOFF_NS 16384
#endif

/* A compare_and_set found the word changed since this process last saw it: it
 * lost to another process, and pauses before returning False, for a random time
 * up to a limit that doubles with each loss and halves with each win.  A retry
 * loop in many processes then has fewer of them pulling the word's line at once,
 * so more of the swaps succeed (on 16 cores, about twice the total).  A process
 * alone never loses, and a plain mismatch (the value was already other than
 * expected when this process last read it) does not pause. */
static void lost_cas(ps_Table *self)
{
    uint32_t limit = self->backoff > 16 ? 2 * self->backoff : 32;
    self->backoff = limit = limit > PS_CAS_BACKOFF_NS ? PS_CAS_BACKOFF_NS : limit;
    if (limit == 0)
        return;
    int64_t now = ps_now_ns();
    uint32_t x = self->rng ? self->rng : (uint32_t)now | 1;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    self->rng = x;
    for (int64_t until = now + x % limit; ps_now_ns() < until;)
        ps_cpu_relax();
}

/* cas(key, expected, new, slow) -> True (stored), False (the value differs),
 * in place and without a lock, or slow as for incr (or when expected or new is
 * not an exact 63-bit int). */
PyObject *ps_table_cas(PyObject *table, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t ints[2]; /* expected, new */
    int slow;
    _Atomic uint64_t *w =
        word_args((ps_Table *)table, "cas(key, expected, new, slow)", args, nargs, ints, 2, &slow);
    if (w == NULL)
        return slow ? Py_NewRef(args[nargs - 1]) : NULL;
    if (!in_place(ints[1]))
        return Py_NewRef(args[3]); /* stored frozen, under the lock */
    /* Swapped straight from the expected value, without loading the word
     * first: a failed swap says what the word held. */
    ps_Table *self = (ps_Table *)table;
    uint64_t seen = word_of(ints[0]);
    while (!atomic_compare_exchange_weak(w, &seen, word_of(ints[1]))) {
        if (seen & FROZEN)
            return cooled(self, args[3]);
        if (value_of_word(seen) != ints[0]) {
            if (seen != self->hot_seen)
                lost_cas(self);
            self->hot_seen = seen;
            Py_RETURN_FALSE;
        }
    }
    self->hot_seen = word_of(ints[1]);
    self->backoff >>= 1;
    Py_RETURN_TRUE;
}

/* freeze(canon) -> (tag, value bytes) or None: get() for a writer holding the
 * lock that may replace the entry: an int entry stays as read (in-place
 * updates wait for the lock) until it is stored over or thawed. */
static PyObject *Table_freeze(ps_Table *self, PyObject *canon)
{
    return value_for(self, canon, "freeze", 1);
}

/* thaw(canon): allow in-place updates of a frozen int entry again (the lock
 * holder decided not to replace it). */
static PyObject *Table_thaw(ps_Table *self, PyObject *canon)
{
    ps_entry *e = NULL;
    int64_t i = find(self, canon, "thaw", &e);
    if (i == -2)
        return NULL;
    _Atomic uint64_t *w = i < 0 ? NULL : int_word(e);
    if (w != NULL)
        store_word(w, freeze_word(w)); /* the value it was frozen with, as a whole word */
    Py_RETURN_NONE;
}

/* freeze_all(): freeze every int entry (the lock holder is about to retire
 * this table without copying it, as clear() does). */
static PyObject *Table_freeze_all(ps_Table *self, PyObject *unused)
{
    (void)unused;
    for (uint64_t i = 0; i < self->nslots; i++) {
        uint64_t s = atomic_load(&self->slots[i]);
        if (s == EMPTY || s == TOMB)
            continue;
        ps_entry *e = entry_of(self, s);
        if (e == NULL)
            return damaged_error();
        _Atomic uint64_t *w = int_word(e);
        if (w != NULL)
            freeze_word(w);
    }
    Py_RETURN_NONE;
}

/* A live entry and its insertion order, kept beside it so that sorting
 * compares words in one array instead of reading entries all over the heap. */
typedef struct {
    uint64_t order;
    ps_entry *e;
} ordered_entry;

static int by_order(const void *a, const void *b)
{
    uint64_t x = ((const ordered_entry *)a)->order, y = ((const ordered_entry *)b)->order;
    return x < y ? -1 : x > y;
}

/* Sort the n live entries by their orders (which are unique): each put in its
 * place among the orders from low to low + span when they are that dense (a
 * table without many deletions), in O(n); else qsort.  -1 when out of memory. */
static int sort_by_order(ordered_entry *live, uint64_t n, uint64_t low, uint64_t span)
{
    if (span > 4 * n + 64) {
        qsort(live, (size_t)n, sizeof(ordered_entry), by_order);
        return 0;
    }
    ps_entry **at = PyMem_Calloc((size_t)span, sizeof(ps_entry *));
    if (at == NULL)
        return -1;
    for (uint64_t i = 0; i < n; i++)
        at[live[i].order - low] = live[i].e;
    uint64_t k = 0;
    for (uint64_t i = 0; i < span; i++)
        if (at[i] != NULL)
            live[k++] = (ordered_entry){low + i, at[i]};
    PyMem_Free(at);
    return 0;
}

/* copy_from(source) -> bool: insert every live entry of source (another
 * table), in insertion order; False if they do not fit. */
static PyObject *Table_copy_from(ps_Table *self, PyObject *arg)
{
    if (!PyObject_TypeCheck(arg, &ps_TableType)) {
        PyErr_SetString(PyExc_TypeError, "copy_from(source: Table)");
        return NULL;
    }
    ps_Table *src = (ps_Table *)arg;
    ordered_entry *live =
        PyMem_Malloc(sizeof(ordered_entry) * (size_t)(src->nslots ? src->nslots : 1));
    if (live == NULL)
        return PyErr_NoMemory();
    uint64_t n = 0, low = UINT64_MAX, high = 0;
    for (uint64_t i = 0; i < src->nslots; i++) {
        uint64_t s = atomic_load(&src->slots[i]);
        if (s == EMPTY || s == TOMB)
            continue;
        ps_entry *e = entry_of(src, s);
        if (e == NULL) {
            PyMem_Free(live);
            return damaged_error();
        }
        live[n++] = (ordered_entry){e->order, e};
        low = e->order < low ? e->order : low;
        high = e->order > high ? e->order : high;
    }
    if (n > 0 && sort_by_order(live, n, low, high - low + 1) < 0) {
        PyMem_Free(live);
        return PyErr_NoMemory();
    }
    int r = 1;
    for (uint64_t j = 0; j < n && r >= 0; j++) {
        ps_entry *e = live[j].e;
        char buf[8];
        ps_item it = {CANON(e),     KEY(e),  entry_freeze(e, buf), e->canon_len, e->key_len,
                      e->value_len, e->hash, e->value_tag};
        r = table_insert(self, &it);
    }
    PyMem_Free(live);
    if (r == -2 || r == -3)
        return damaged_error();
    return PyBool_FromLong(r >= 0);
}

/* delete(canon) -> (tag, value bytes) of the removed entry, or None. */
PyObject *ps_table_delete(PyObject *table, PyObject *canon)
{
    ps_Table *self = (ps_Table *)table;
    ps_entry *e = NULL;
    int64_t i = find(self, canon, "delete", &e);
    if (i == -2)
        return NULL;
    if (i < 0)
        Py_RETURN_NONE;
    char buf[8];
    PyObject *v = value_of(e, entry_freeze(e, buf));
    if (v == NULL)
        return NULL;
    atomic_store(&self->slots[i], TOMB);
    atomic_fetch_sub(&self->t->count, 1);
    atomic_fetch_add(&self->t->garbage, entry_size(e));
    return v;
}

/* entries() -> list of (order, canon, key, tag, value) for live entries, in
 * slot order.  Lock-free; a concurrent writer may make it a mix of before and
 * after, never a torn entry. */
static PyObject *Table_entries(ps_Table *self, PyObject *unused)
{
    (void)unused;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (uint64_t i = 0; i < self->nslots; i++) {
        uint64_t s = atomic_load_explicit(&self->slots[i], memory_order_acquire);
        if (s == EMPTY || s == TOMB)
            continue;
        ps_entry *e = entry_of(self, s);
        if (e == NULL) {
            Py_DECREF(out);
            return damaged_error();
        }
        char buf[8];
        PyObject *item = Py_BuildValue("(Ky#y#Iy#)", (unsigned long long)e->order, CANON(e),
                                       (Py_ssize_t)e->canon_len, KEY(e), (Py_ssize_t)e->key_len,
                                       e->value_tag, entry_value(e, buf), (Py_ssize_t)e->value_len);
        if (item == NULL || PyList_Append(out, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(item);
    }
    return out;
}

/* recount(): make count agree with the slots (after a writer died). */
static PyObject *Table_recount(ps_Table *self, PyObject *unused)
{
    (void)unused;
    uint64_t live = 0, filled = 0;
    for (uint64_t i = 0; i < self->nslots; i++) {
        uint64_t s = atomic_load(&self->slots[i]);
        filled += s != EMPTY;
        live += s != EMPTY && s != TOMB;
    }
    atomic_store(&self->t->count, live);
    atomic_store(&self->t->used_slots, filled);
    Py_RETURN_NONE;
}

static PyObject *Table_stats(ps_Table *self, PyObject *unused)
{
    (void)unused;
    ps_table_layout *t = self->t;
    return Py_BuildValue(
        "(KKKKKKK)", (unsigned long long)atomic_load(&t->count), (unsigned long long)self->nslots,
        (unsigned long long)atomic_load(&t->used_slots),
        (unsigned long long)atomic_load(&t->heap_used), (unsigned long long)self->heap_size,
        (unsigned long long)atomic_load(&t->garbage),
        (unsigned long long)atomic_load(&t->next_order));
}

static Py_ssize_t Table_len(ps_Table *self)
{
    return (Py_ssize_t)atomic_load(&self->t->count);
}

static PyMethodDef Table_methods[] = {
    {"init", (PyCFunction)(void (*)(void))Table_init, METH_FASTCALL | METH_CLASS,
     "init(mapping, offset, nslots, heap_size, next_order): lay out an empty table."},
    {"get", (PyCFunction)Table_get, METH_O, "get(canon) -> (tag, value) | None, lock-free."},
    {"put", (PyCFunction)(void (*)(void))ps_table_put, METH_FASTCALL,
     "put(canon, key, tag, value) -> 1 new, 0 replaced, -1 full (caller holds the lock)."},
    {"incr", (PyCFunction)(void (*)(void))ps_table_incr, METH_FASTCALL,
     "incr(key, n, slow) -> new value, in place without a lock, or slow."},
    {"cas", (PyCFunction)(void (*)(void))ps_table_cas, METH_FASTCALL,
     "cas(key, expected, new, slow) -> bool, or slow: compare_and_set of an int in place."},
    {"freeze", (PyCFunction)Table_freeze, METH_O,
     "freeze(canon) -> (tag, value) | None, holding an int entry still (caller holds the lock)."},
    {"thaw", (PyCFunction)Table_thaw, METH_O, "thaw(canon): undo freeze (caller holds the lock)."},
    {"freeze_all", (PyCFunction)Table_freeze_all, METH_NOARGS,
     "freeze_all(): freeze every int entry before the table is retired uncopied."},
    {"copy_from", (PyCFunction)Table_copy_from, METH_O,
     "copy_from(source) -> bool: insert source's live entries in order; False if full."},
    {"delete", (PyCFunction)ps_table_delete, METH_O,
     "delete(canon) -> (tag, value) | None (caller holds the lock)."},
    {"entries", (PyCFunction)Table_entries, METH_NOARGS,
     "entries() -> [(order, canon, key, tag, value)] of live entries."},
    {"recount", (PyCFunction)Table_recount, METH_NOARGS, "recount(): repair the counters."},
    {"stats", (PyCFunction)Table_stats, METH_NOARGS,
     "stats() -> (count, nslots, used slots, heap used, heap size, garbage, next order)"},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods Table_as_sequence = {
    .sq_length = (lenfunc)Table_len,
};

PyTypeObject ps_TableType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "procshare._core.Table",
    .tp_basicsize = sizeof(ps_Table),
    .tp_dealloc = Table_dealloc,
    .tp_as_sequence = &Table_as_sequence,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc =
        "Table(mapping, offset): a hash table inside a mapping (entries immutable but int values).",
    .tp_methods = Table_methods,
    .tp_new = Table_new,
};
