"""HTTP edge: thin Litestar handlers that turn requests into Calls and render results."""
