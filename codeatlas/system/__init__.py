"""System information endpoints."""
