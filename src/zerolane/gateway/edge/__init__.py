"""The enforcement edge: where a request's credentials are read and every outcome is
rendered, for HTTP (:mod:`zerolane.gateway.edge.http`) and for JSON-RPC
(:mod:`zerolane.gateway.edge.jsonrpc`).

The core decides and raises typed errors with a :class:`~zerolane.errors.Refusal` kind;
only these modules know HTTP statuses, challenges and error objects. Every enforcement
point (the HTTP gateway, forward-auth, the MCP gateway, the in-process guard, the
control plane's routes) answers through them, so the same refusal looks the same at
each, and a new outcome is a change here.
"""
