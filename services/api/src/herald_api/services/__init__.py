"""Domain logic of the API: plain functions taking `(session, tenant_id, …)`, no HTTP inside."""
