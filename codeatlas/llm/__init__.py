"""The LLM: an OpenAI-compatible streaming client, its settings, errors and the local model."""
