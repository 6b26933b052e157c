"""The HTTP API (``/v1``): one router module per noun, problems (RFC 9457), the app factory."""
