"""SQLite implementation of the store: writer thread, migrations, queries."""
