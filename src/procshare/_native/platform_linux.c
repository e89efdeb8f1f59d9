/* Linux implementation of platform.h. */
#define _GNU_SOURCE
#include "platform.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

ps_wait_result ps_futex_wait(_Atomic uint32_t *word, uint32_t expected, int64_t timeout_ns)
{
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000);
        ts.tv_nsec = (long)(timeout_ns % 1000000000);
        tsp = &ts;
    }
    /* Not FUTEX_PRIVATE_FLAG: the word is in memory shared between processes. */
    long rc = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, expected, tsp, NULL, 0);
    if (rc == 0 || errno == EAGAIN)
        return PS_WAIT_WOKEN;
    if (errno == ETIMEDOUT)
        return PS_WAIT_TIMEOUT;
    return PS_WAIT_INTR;
}

int ps_futex_wake(_Atomic uint32_t *word, int n)
{
    long rc =
        syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, n < 0 ? INT32_MAX : n, NULL, NULL, 0);
    return rc < 0 ? 0 : (int)rc;
}

int64_t ps_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int ps_shm_open(const char *name, int create, unsigned mode)
{
    int flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0);
    return shm_open(name, flags, (mode_t)mode);
}

int ps_shm_unlink(const char *name)
{
    return shm_unlink(name);
}

uint32_t ps_cached_pid;

static pthread_mutex_t watched_lock = PTHREAD_MUTEX_INITIALIZER;

static void refresh_pid(void)
{
    ps_cached_pid = (uint32_t)getpid();
}

/* In a forked child: a new pid, and the table's lock may have been held by a
 * thread that does not exist here. */
static void after_fork_in_child(void)
{
    refresh_pid();
    pthread_mutex_init(&watched_lock, NULL);
}

int ps_random(void *buf, size_t len)
{
    return getentropy(buf, len);
}

int ps_back_pages(void *addr, size_t len)
{
#ifdef MADV_POPULATE_WRITE
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), start = (uintptr_t)addr & ~(page - 1);
    return madvise((void *)start, (uintptr_t)addr + len - start, MADV_POPULATE_WRITE) == 0 ? 0 : -1;
#else
    (void)addr;
    (void)len;
    errno = ENOSYS;
    return -1;
#endif
}

int ps_platform_init(void)
{
    refresh_pid();
    return pthread_atfork(NULL, NULL, after_fork_in_child);
}

/* pidfds of processes seen alive, so that a repeated check is one poll(). A
 * pidfd names one process for good: if its pid is reused, the old pidfd
 * reports the old process dead and the pid is checked afresh. */
#define WATCHED 64
static struct {
    uint32_t pid;
    int fd;
} watched[WATCHED];
static unsigned watched_next;

/* 1 alive, 0 exited (zombie or reaped), -1 cannot tell (fd error). */
static int pidfd_alive(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    int r = poll(&p, 1, 0);
    return r < 0 ? -1 : r == 0;
}

static int pid_alive_proc(uint32_t pid)
{
    if (kill((pid_t)pid, 0) < 0 && errno == ESRCH)
        return 0;
    /* A zombie still answers kill(): read its state from /proc. */
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%u/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : 1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 1;
    buf[n] = '\0';
    /* The state follows the last ')' (the command name may contain one). */
    char *paren = strrchr(buf, ')');
    if (paren == NULL || paren[1] == '\0' || paren[2] == '\0')
        return 1;
    return paren[2] != 'Z' && paren[2] != 'X';
}

int ps_pid_alive(uint32_t pid)
{
    if (pid == 0 || pid > INT32_MAX)
        return 0;
    if (pid == ps_cached_pid)
        return 1;
    int verdict = -1;
    pthread_mutex_lock(&watched_lock);
    for (unsigned i = 0; i < WATCHED; i++) {
        if (watched[i].pid == pid && watched[i].fd > 0) {
            verdict = pidfd_alive(watched[i].fd);
            if (verdict != 1) { /* gone, or the pid may now name another process */
                close(watched[i].fd);
                watched[i].pid = 0;
                watched[i].fd = 0;
                verdict = -1;
            }
            break;
        }
    }
    pthread_mutex_unlock(&watched_lock);
    if (verdict == 1)
        return 1;
#ifdef SYS_pidfd_open
    int fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
    if (fd < 0 && errno == ESRCH)
        return 0;
    if (fd >= 0) {
        verdict = pidfd_alive(fd);
        if (verdict == 1) {
            pthread_mutex_lock(&watched_lock);
            unsigned i = watched_next++ % WATCHED;
            if (watched[i].fd > 0)
                close(watched[i].fd);
            watched[i].pid = pid;
            watched[i].fd = fd;
            pthread_mutex_unlock(&watched_lock);
            return 1;
        }
        close(fd);
        if (verdict == 0)
            return 0;
    }
#endif
    return pid_alive_proc(pid);
}
