"""ocpi-admin: the operator's command line, a client of the gateway's admin API."""
