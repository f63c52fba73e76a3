"""Sampling: memory snapshots, conditions over them, and reconciliation of kill counters."""
