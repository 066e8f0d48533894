"""OpenAI-compatible routes, served under /v1 and /api/v1."""
