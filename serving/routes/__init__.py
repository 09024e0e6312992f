"""The HTTP routes, one module per group: parse, call one service function, map domain errors
to status codes."""
