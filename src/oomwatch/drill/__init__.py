"""The fire drill: a real OOM kill in a small memory cgroup, end to end."""
