"""Delivery: from the outbox to the notifiers, once each, with retries."""
