"""Storage. SQL lives only under store/sqlite, behind the functions this package exposes."""
