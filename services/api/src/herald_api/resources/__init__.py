"""HTTP resources: thin Collection/Item pairs that parse, call a service, and set `resp.media`."""
