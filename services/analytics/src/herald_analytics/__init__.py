"""The `analytics` worker service."""
