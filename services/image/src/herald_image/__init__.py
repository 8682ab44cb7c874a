"""The `image` worker service."""
