"""CodeAtlas: a self-hosted, code-aware AI assistant backend."""

__version__ = "0.1.0"
