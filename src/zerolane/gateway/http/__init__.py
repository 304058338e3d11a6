"""The HTTP gateway (ASGI reverse proxy): decide every request, inject grants, forward."""

from zerolane.gateway.edge.http import TASK_HEADER
from zerolane.gateway.http.app import GatewayApp
from zerolane.gateway.http.forward import UpstreamAborted

__all__ = ["TASK_HEADER", "GatewayApp", "UpstreamAborted"]
