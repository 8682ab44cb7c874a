"""The `webhooks` worker service: delivers tenants' outcome events to their endpoints."""
