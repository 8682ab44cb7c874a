"""The `content` worker service."""
