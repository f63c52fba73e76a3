"""Enrichment: what a cgroup path, the Kubernetes API or the host say about a kill."""
