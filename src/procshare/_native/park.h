/* Parking: the one waiting primitive under every synchronisation type.  A
 * caller parks on a 32-bit word while it holds an expected value, spinning
 * briefly first (a waker on another core is often only microseconds away),
 * then sleeping on the futex in slices (ps_park_checked in mapping.h drives
 * the slices and runs signal handlers between them). */
#ifndef PROCSHARE_PARK_H
#define PROCSHARE_PARK_H

#include <stdatomic.h>
#include <stdint.h>

#include "platform.h"

/* Default spin before sleeping, in nanoseconds (a build may set another with
 * -DPS_SPIN_NS=..., to measure what spinning buys on a given machine). */
#ifndef PS_SPIN_NS
#define PS_SPIN_NS 20000
#endif

/* Longest single sleep of a blocking wait: after each, the waiter takes the GIL
 * back to run signal handlers (a signal that lands just before the futex call
 * does not interrupt it) and re-checks what it waits for. */
#define PS_SLICE_NS 20000000

static inline void ps_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Wake up to n sleepers on word, making the syscall only when *sleepers says
 * someone sleeps (the waker changed the word first: a sleeper counted after
 * this load finds the word changed when the futex re-checks it). */
static inline void ps_wake_if(_Atomic uint32_t *word, _Atomic uint32_t *sleepers, int n)
{
    if (atomic_load(sleepers) != 0)
        ps_futex_wake(word, n);
}

/* The next sleep of a wait that ends at deadline (ns, < 0: never): at most
 * slice_ns, 0 when the deadline has passed. */
static inline int64_t ps_slice_until(int64_t deadline, int64_t slice_ns)
{
    if (deadline < 0)
        return slice_ns;
    int64_t left = deadline - ps_now_ns();
    return left <= 0 ? 0 : left < slice_ns ? left : slice_ns;
}

/* Spin up to spin_ns while *word == expected.  Returns 1 when it changed. */
static inline int ps_spin(_Atomic uint32_t *word, uint32_t expected, int64_t spin_ns)
{
    if (atomic_load(word) != expected)
        return 1;
    if (spin_ns <= 0)
        return 0;
    int64_t start = ps_now_ns();
    for (uint32_t i = 1;; i++) {
        ps_cpu_relax();
        if (atomic_load_explicit(word, memory_order_acquire) != expected)
            return 1;
        if ((i & 63) == 0 && ps_now_ns() - start >= spin_ns)
            return 0;
    }
}

/* Sleep while *word == expected for at most timeout_ns (negative: no limit),
 * counted in *sleepers (if not NULL) so that wakers call futex only when
 * someone sleeps.  Call without the GIL.  Returns PS_WAIT_WOKEN when the word
 * differs or a wake arrived (possibly spurious), PS_WAIT_TIMEOUT, or
 * PS_WAIT_INTR when a signal interrupted the sleep. */
static inline ps_wait_result ps_sleep(_Atomic uint32_t *word, uint32_t expected, int64_t timeout_ns,
                                      _Atomic uint32_t *sleepers)
{
    if (sleepers != NULL)
        atomic_fetch_add(sleepers, 1);
    ps_wait_result r = ps_futex_wait(word, expected, timeout_ns);
    if (sleepers != NULL)
        atomic_fetch_sub(sleepers, 1);
    return r;
}

#endif
