/* Ring: a bounded queue of byte messages inside a mapping, for any number of
 * producer and consumer processes.  A robust lock word serialises put and
 * get; each keeps claim, copy and publish inside that one short section, and
 * publishes by storing the tail (put) or head (get) last, so a process
 * killed mid-copy leaves the ring as it was: a message is delivered whole or
 * not at all.  Sleepers park on sequence words (counted, so that wake-ups
 * cost a syscall only when someone sleeps). */
#ifndef PROCSHARE_RING_H
#define PROCSHARE_RING_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Bytes of the ring's header; its data area follows. */
#define PS_RING_HEADER 128

extern PyTypeObject ps_RingType;

#endif
