"""Shared data: scalars, arrays, counters, queues, Dict and List."""
