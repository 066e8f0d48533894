"""Pure dict-to-dict translators between the OpenAI shapes and other providers' wire formats."""
