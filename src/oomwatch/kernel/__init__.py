"""The kernel log: line formats, OOM report parsing, fast scanning of large logs."""
