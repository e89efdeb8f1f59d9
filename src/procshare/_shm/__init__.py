"""Shared-memory plumbing: segments, names, handles, codecs, table generations, the inventory."""
