"""`make faults`: a running gateway under steady load while its database, cache and workers are broken."""
