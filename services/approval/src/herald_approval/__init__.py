"""The `approval` worker service."""
