"""Tasks: playbooks, just-in-time task lifecycle and request-time decisions."""
