"""Incidents: the builder and the wording of explanations."""
