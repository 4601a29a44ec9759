"""Cross-cutting pieces: request context, logging."""
