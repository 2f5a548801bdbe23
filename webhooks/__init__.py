"""Webhook receivers, one per provider: verify the raw body, parse, store with a dedupe key,
enqueue, answer 2xx fast. No processing happens in the request (workers do that)."""
