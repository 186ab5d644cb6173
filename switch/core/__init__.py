"""The dialect-neutral call engine: calls and their one status path, the status table, recordings, numbers, the store,
webhooks (persisted, ordered, retried), notifications and configuration."""
