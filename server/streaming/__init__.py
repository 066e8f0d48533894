"""Server-sent events: parsing upstream streams and relaying them to clients."""
