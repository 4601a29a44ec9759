"""Cross-cutting HTTP security: response headers (CSP, framing, HSTS), CORS, the self-hosted
Swagger UI page, and the settings of both."""
