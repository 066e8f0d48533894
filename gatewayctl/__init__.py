"""gatewayctl: the operator's CLI. A client of the admin API, except init/serve (local files)."""
