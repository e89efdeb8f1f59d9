/* Parking: the one waiting primitive under every synchronisation type.  A
 * caller parks on a 32-bit word while it holds an expected value, spinning
 * briefly first (a waker on another core is often only microseconds away),
 * then sleeping on the futex.  Call without the GIL. */
#ifndef PROCSHARE_PARK_H
#define PROCSHARE_PARK_H

#include <stdatomic.h>
#include <stdint.h>

#include "platform.h"

/* Default spin before sleeping, in nanoseconds. */
#define PS_SPIN_NS 20000

static inline void ps_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Wait while *word == expected: spin up to spin_ns, then sleep for the rest of
 * timeout_ns (negative: no limit).  Returns PS_WAIT_WOKEN when the word
 * differs or a wake arrived (possibly spurious), PS_WAIT_TIMEOUT, or
 * PS_WAIT_INTR when a signal interrupted the sleep. */
static inline ps_wait_result ps_park(_Atomic uint32_t *word, uint32_t expected, int64_t timeout_ns,
                                     int64_t spin_ns)
{
    if (atomic_load(word) != expected)
        return PS_WAIT_WOKEN;
    int64_t start = ps_now_ns();
    if (timeout_ns >= 0 && spin_ns > timeout_ns)
        spin_ns = timeout_ns;
    if (spin_ns > 0) {
        for (uint32_t i = 1;; i++) {
            ps_cpu_relax();
            if (atomic_load_explicit(word, memory_order_acquire) != expected)
                return PS_WAIT_WOKEN;
            if ((i & 63) == 0 && ps_now_ns() - start >= spin_ns)
                break;
        }
    }
    int64_t left = -1;
    if (timeout_ns >= 0) {
        left = timeout_ns - (ps_now_ns() - start);
        if (left <= 0)
            return PS_WAIT_TIMEOUT;
    }
    return ps_futex_wait(word, expected, left);
}

#endif
