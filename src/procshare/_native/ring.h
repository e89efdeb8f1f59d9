/* Ring: a bounded queue of byte messages inside a mapping, for any number of
 * producer and consumer processes, made of one or more shards.  Each shard
 * is a ring of records with two robust locks, one for producers and one for
 * consumers (a queue with a maxsize, which counts its messages, has both
 * sides take the consumers'); each keeps claim, copy and publish inside one
 * short section and publishes by storing the tail (put) or head (get) last,
 * so a process killed mid-copy leaves the shard as it was: a message is
 * delivered whole or not at all.  A producer process puts into a shard of
 * its own, so its messages stay in order; getters take from any shard that
 * holds a message and whose consumers' lock is free, so producers and
 * consumers added spread over the locks instead of queueing on one.
 * Sleepers park on sequence words (counted, so that wake-ups cost a syscall
 * only when someone sleeps). */
#ifndef PROCSHARE_RING_H
#define PROCSHARE_RING_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Bytes of the queue's header; the shards' headers follow, then their data
 * areas. */
#define PS_RING_HEADER 128
#define PS_RING_SHARD 128
#define PS_RING_MAX_SHARDS 64

extern PyTypeObject ps_RingType;

#endif
