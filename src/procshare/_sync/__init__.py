"""Synchronisation: the parking primitive and the types built on it."""
