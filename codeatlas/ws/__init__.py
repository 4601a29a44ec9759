"""WebSocket `/api/v1/ws` and the event bus that feeds it (issue 12, checklist 2-A and 2-C)."""
