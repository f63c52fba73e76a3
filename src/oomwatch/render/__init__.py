"""Rendering records for people and machines: terminal text, JSON."""
