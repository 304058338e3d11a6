"""zerolane: zero trust for the machine lane."""

__version__ = "0.1.0"
