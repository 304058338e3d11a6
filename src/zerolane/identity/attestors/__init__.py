"""Attestors: how a workload proves who it is. One folder per attestor.

Every attestor implements :class:`zerolane.identity.attestors.base.Attestor` and
passes the shared suite in ``tests/identity/attestors/test_attestor_contract.py``.
"""
