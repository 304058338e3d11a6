"""Audit: versioned events, masking, the hash chain and the log that writes them."""
