"""The gateway server: a Litestar app over an in-memory snapshot and a SQLite store."""
