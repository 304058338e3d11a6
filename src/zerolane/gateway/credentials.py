"""The credential source of each upstream, built from its configuration at startup."""

from __future__ import annotations

from zerolane.gateway.config import CredentialConfig, GatewayConfig
from zerolane.grants import CredentialSource, HmacKeys, StaticSecret
from zerolane.types import Clock


def credential_source(config: CredentialConfig, clock: Clock | None = None) -> CredentialSource:
    """Read the secret or key now, so a bad file mode or a missing variable stops startup."""
    if config.type == "hmac":
        assert config.key_file is not None
        return HmacKeys.from_file(
            config.key_file, header=config.header, fmt=config.format, ttl=config.ttl, clock=clock
        )
    if config.secret_file is not None:
        return StaticSecret.from_file(config.secret_file, header=config.header, fmt=config.format)
    assert config.secret_env is not None
    return StaticSecret.from_env(config.secret_env, header=config.header, fmt=config.format)


def build_credentials(
    config: GatewayConfig, clock: Clock | None = None
) -> dict[str, CredentialSource]:
    """Upstream name -> its credential source, for the upstreams that have one."""
    return {
        upstream.name: credential_source(upstream.credential, clock)
        for upstream in config.upstreams
        if upstream.credential is not None
    }
