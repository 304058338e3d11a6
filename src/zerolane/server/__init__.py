"""The control plane: composition of a deployment and its HTTP API."""
