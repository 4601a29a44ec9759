"""Liveness and readiness (2-B): a registry of component checks."""
