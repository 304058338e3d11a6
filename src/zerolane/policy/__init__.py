"""Policy decision point: Cedar policies over task intent and request context."""
