"""Media helpers shared by the request path and the providers: what audio bytes say about their length,
and the deterministic media the mock provider makes."""
