"""Dialects: how each front door (chat, embeddings, responses, messages, gemini) talks to any provider.

A dialect picks native pass-through when the provider speaks the front door's format, translation
through OpenAI chat otherwise, and supplies the stream adapter that frames events for the client.
"""
