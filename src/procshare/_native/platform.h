/* Operating-system services the core needs: futex wait/wake on a word in
 * shared memory, POSIX shared memory names, process liveness and random
 * bytes.  Every
 * platform-specific call lives behind this header; platform_linux.c is the
 * only implementation so far. */
#ifndef PROCSHARE_PLATFORM_H
#define PROCSHARE_PLATFORM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Result of ps_futex_wait. */
typedef enum { PS_WAIT_WOKEN = 0, PS_WAIT_TIMEOUT = 1, PS_WAIT_INTR = 2 } ps_wait_result;

/* Sleep while *word == expected, for at most timeout_ns (negative: no limit).
 * Spurious wake-ups are possible: callers re-check their condition. */
ps_wait_result ps_futex_wait(_Atomic uint32_t *word, uint32_t expected, int64_t timeout_ns);

/* Wake up to n sleepers on word (n < 0: all).  Returns how many woke. */
int ps_futex_wake(_Atomic uint32_t *word, int n);

/* Monotonic clock in nanoseconds. */
int64_t ps_now_ns(void);

/* Open (and with create != 0, exclusively create with the given mode) a
 * shared-memory object; returns an fd or -1 with errno set. */
int ps_shm_open(const char *name, int create, unsigned mode);
int ps_shm_unlink(const char *name);

/* This process's pid, cached and refreshed in forked children. */
extern uint32_t ps_cached_pid;
static inline uint32_t ps_self_pid(void)
{
    return ps_cached_pid;
}

/* Fill buf with len (at most 256) bytes from the system's CSPRNG: 0, or -1
 * with errno set. */
int ps_random(void *buf, size_t len);

/* 1 if pid names a live process (not a zombie), 0 if it is gone. */
int ps_pid_alive(uint32_t pid);

/* Back the pages of [addr, addr + len) of a shared mapping with memory now
 * (without changing their contents), so that a full /dev/shm is an error
 * here rather than SIGBUS at first use.  0, or -1 when it could not. */
int ps_back_pages(void *addr, size_t len);

/* Call once at module initialisation. */
int ps_platform_init(void);
#endif
