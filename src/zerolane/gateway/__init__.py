"""Policy enforcement points: they turn traffic into decisions.

- :mod:`zerolane.gateway.http`: the HTTP reverse proxy (``zerolane gateway run``),
  configured by :mod:`zerolane.gateway.config`, with the request checks of
  :mod:`zerolane.gateway.normalize` and the routes of :mod:`zerolane.gateway.routes`;
- :mod:`zerolane.gateway.mcp`, :mod:`zerolane.gateway.forward_auth` and
  :mod:`zerolane.gateway.inproc`: the MCP gateway, forward-auth and the in-process guard;
- :mod:`zerolane.gateway.edge`: where every one of them (and the control plane's routes)
  reads a request's credentials and renders its outcome, for HTTP and for JSON-RPC.
"""
