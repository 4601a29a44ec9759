"""knowledge domain."""
