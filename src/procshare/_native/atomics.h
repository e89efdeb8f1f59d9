/* Sequentially consistent atomic operations on naturally aligned 1, 2, 4
 * and 8 byte words inside a mapping, with the value carried as uint64_t.
 * Callers have bounds- and alignment-checked the pointer already. */
#ifndef PROCSHARE_ATOMICS_H
#define PROCSHARE_ATOMICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum { PS_OP_ADD, PS_OP_SUB, PS_OP_AND, PS_OP_OR, PS_OP_XOR } ps_fetch_op;

#define PS_WIDTH_SWITCH(width, BODY) \
    switch (width) {                 \
    case 1: {                        \
        typedef uint8_t T;           \
        BODY;                        \
    } break;                         \
    case 2: {                        \
        typedef uint16_t T;          \
        BODY;                        \
    } break;                         \
    case 4: {                        \
        typedef uint32_t T;          \
        BODY;                        \
    } break;                         \
    default: {                       \
        typedef uint64_t T;          \
        BODY;                        \
    } break;                         \
    }

static inline uint64_t ps_atomic_load(void *p, int width)
{
    uint64_t r = 0;
    PS_WIDTH_SWITCH(width, r = atomic_load((_Atomic T *)p))
    return r;
}

static inline void ps_atomic_store(void *p, int width, uint64_t v)
{
    PS_WIDTH_SWITCH(width, atomic_store((_Atomic T *)p, (T)v))
}

static inline uint64_t ps_atomic_exchange(void *p, int width, uint64_t v)
{
    uint64_t r = 0;
    PS_WIDTH_SWITCH(width, r = atomic_exchange((_Atomic T *)p, (T)v))
    return r;
}

/* On failure *expected receives the current value. */
static inline bool ps_atomic_cas(void *p, int width, uint64_t *expected, uint64_t desired)
{
    bool ok = false;
    PS_WIDTH_SWITCH(width, {
        T e = (T)*expected;
        ok = atomic_compare_exchange_strong((_Atomic T *)p, &e, (T)desired);
        *expected = e;
    })
    return ok;
}

/* Returns the previous value; arithmetic wraps modulo 2**(8*width). */
static inline uint64_t ps_atomic_fetch(void *p, int width, ps_fetch_op op, uint64_t v)
{
    uint64_t r = 0;
    PS_WIDTH_SWITCH(width, {
        _Atomic T *a = (_Atomic T *)p;
        switch (op) {
        case PS_OP_ADD: r = atomic_fetch_add(a, (T)v); break;
        case PS_OP_SUB: r = atomic_fetch_sub(a, (T)v); break;
        case PS_OP_AND: r = atomic_fetch_and(a, (T)v); break;
        case PS_OP_OR: r = atomic_fetch_or(a, (T)v); break;
        default: r = atomic_fetch_xor(a, (T)v); break;
        }
    })
    return r;
}

#endif
