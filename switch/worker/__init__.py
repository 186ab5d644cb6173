"""Media workers: one process per pjsua2 Endpoint.  The only package that imports pjsua2."""
