"""oomwatch: tells you, at once and once in effect, when Linux OOM-kills a process, and why."""

__version__ = "0.1.0"
