"""Workload identity: SPIFFE IDs, signing keys, SVIDs and attestation."""
