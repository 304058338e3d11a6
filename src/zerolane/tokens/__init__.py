"""Tokens: JWS/JWT handling, JWK thumbprints and (later) task tokens and DPoP.

Modules are named after the standard they implement.
"""
