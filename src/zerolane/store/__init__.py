"""Storage ports (small Protocols) and their backends.

The core depends only on :mod:`zerolane.store.ports` and
:mod:`zerolane.store.records`; backends live in one folder each and pass one shared
conformance suite (``tests/conformance``).
"""
