"""Tokens: JWS verification and signing (``jws``, over joserfc's public API), the one
table of algorithms (``algorithms``), typed JWS errors (``errors``), JWK thumbprints
(``rfc7638``), task tokens (``rfc9068``), DPoP proofs (``rfc9449``), token exchange
(``rfc8693``) and certificate-bound tokens (``rfc8705``).

Modules are named after the standard they implement.
"""
