"""oomwatch: tells you, at once and exactly once, when Linux kills a process for lack of memory."""

__version__ = "0.1.0"
