"""Webhook receivers, one per provider (verify, parse, dedupe, enqueue). Zoom arrives with issue 3."""
