"""The trust domain's signing keys, on disk, never in the database.

``<home>/keys/`` (0700) holds one PKCS#8 PEM per key (0600, named by its RFC 7638
thumbprint) and ``keyring.json`` (0600): which key signs now, and until when each
retired key stays published. A key is retired by rotation; its public part stays in
the published key set until every token it signed has expired, then it is pruned.

Another process (``zerolane keys rotate``) may rotate the keys, so the manifest is
looked at again (one ``stat``), but at most once every :data:`RECHECK_EVERY` seconds:
looking on every use cost each request two system calls. A rotation made here is seen
at once; one made by another process within that time, or at once after
:meth:`Keyring.recheck`, which a verifier calls when a token names a key it was not
given.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from zerolane.errors import InvalidInput, Unavailable
from zerolane.fsutil import ensure_private_dir, write_private
from zerolane.tokens import jws
from zerolane.tokens.algorithms import SIGNING_ALG
from zerolane.tokens.rfc7638 import thumbprint
from zerolane.types import Clock

ALGORITHM = SIGNING_ALG
_PUBLIC_MEMBERS = ("kty", "crv", "x", "y")
#: seconds between two looks at the manifest on disk (see the module docstring)
RECHECK_EVERY = 0.25


@dataclass(frozen=True, slots=True)
class KeyInfo:
    kid: str
    alg: str
    created_at: float
    retired_at: float | None = None
    publish_until: float | None = None


@dataclass(frozen=True, slots=True)
class Manifest:
    active: str
    sequence: int
    keys: tuple[KeyInfo, ...]


def public_jwk(private_key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    """The public JWK of an EC key with only its public members."""
    return _public_members(jws.public_jwk(private_key))


def _public_members(full: dict[str, Any]) -> dict[str, str]:
    return {name: str(full[name]) for name in _PUBLIC_MEMBERS}


@dataclass(frozen=True, slots=True)
class _Loaded:
    """One reading of the manifest and its keys, replaced whole so that a reader never
    pairs a manifest with another manifest's keys."""

    manifest: Manifest
    #: the manifest file's (mtime_ns, inode) when it was read
    stamp: tuple[int, int]
    signers: dict[str, jws.Signer]
    published: tuple[dict[str, str], ...]


class Keyring:
    """Loads, uses and rotates the signing keys kept under ``<home>/keys``."""

    def __init__(
        self,
        directory: Path,
        clock: Clock,
        *,
        recheck_every: float = RECHECK_EVERY,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self._clock = clock
        self._recheck_every = recheck_every
        #: a monotonic clock (not ``clock``, which may stand still or jump) for rechecks
        self._monotonic = monotonic
        self._next_check = float("-inf")
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None

    @property
    def manifest_path(self) -> Path:
        return self.directory / "keyring.json"

    # creation and rotation
    def create(self) -> str:
        """Create the first key; refuses when a keyring already exists."""
        if self.manifest_path.exists():
            raise InvalidInput("keys.exist", f"a keyring already exists in {self.directory}")
        ensure_private_dir(self.directory)
        kid = self._new_key()
        now = self._clock.now()
        self._save(Manifest(active=kid, sequence=1, keys=(KeyInfo(kid, ALGORITHM, now),)))
        return kid

    def rotate(self, publish_for: float) -> tuple[str, str]:
        """Make a new key active; keep the old one published ``publish_for`` seconds.

        Returns (old kid, new kid).
        """
        with self._lock:
            manifest = self._load_manifest()
            now = self._clock.now()
            kid = self._new_key()
            keys = []
            for info in manifest.keys:
                if info.kid == manifest.active:
                    info = KeyInfo(info.kid, info.alg, info.created_at, now, now + publish_for)
                keys.append(info)
            keys.append(KeyInfo(kid, ALGORITHM, now))
            kept = self._prune(keys, now)
            self._save(Manifest(active=kid, sequence=manifest.sequence + 1, keys=tuple(kept)))
            self._loaded, self._next_check = None, float("-inf")
            return manifest.active, kid

    def _new_key(self) -> str:
        key = ec.generate_private_key(ec.SECP256R1())
        kid = thumbprint(public_jwk(key))
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private(self.directory / f"{kid}.pem", pem)
        return kid

    def _prune(self, keys: list[KeyInfo], now: float) -> list[KeyInfo]:
        kept = []
        for info in keys:
            if info.publish_until is not None and info.publish_until <= now:
                (self.directory / f"{info.kid}.pem").unlink(missing_ok=True)
                continue
            kept.append(info)
        return kept

    def _save(self, manifest: Manifest) -> None:
        doc = {
            "active": manifest.active,
            "sequence": manifest.sequence,
            "keys": [asdict(k) for k in manifest.keys],
        }
        write_private(self.manifest_path, json.dumps(doc, indent=2).encode())

    # loading
    def _load_manifest(self) -> Manifest:
        try:
            doc = json.loads(self.manifest_path.read_text())
            return Manifest(
                active=doc["active"],
                sequence=int(doc["sequence"]),
                keys=tuple(KeyInfo(**k) for k in doc["keys"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise Unavailable("keys.unreadable", f"cannot read {self.manifest_path}") from err

    def _refresh(self) -> _Loaded:
        """The loaded keyring; looked for on disk again once ``recheck_every`` seconds
        have passed since the last look."""
        loaded = self._loaded
        if loaded is not None and self._monotonic() < self._next_check:
            return loaded
        return self._reload()

    def recheck(self) -> None:
        """Look at the manifest on disk now, however recently it was looked at: for a
        caller holding a token that names a key not among :meth:`public_keys` (another
        process may just have rotated)."""
        self._reload()

    def _reload(self) -> _Loaded:
        """Load from disk when the manifest changed since it was last loaded."""
        checked_at = self._monotonic()
        try:
            st = os.stat(self.manifest_path)
        except OSError as err:
            raise Unavailable("keys.unreadable", f"cannot read {self.manifest_path}") from err
        stamp = (st.st_mtime_ns, st.st_ino)
        with self._lock:
            loaded = self._loaded
            if loaded is None or loaded.stamp != stamp:
                loaded = self._loaded = self._load(stamp)
            self._next_check = checked_at + self._recheck_every
            return loaded

    def _load(self, stamp: tuple[int, int]) -> _Loaded:
        manifest = self._load_manifest()
        signers: dict[str, jws.Signer] = {}
        for info in manifest.keys:
            path = self.directory / f"{info.kid}.pem"
            try:
                key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            except (OSError, ValueError) as err:
                raise Unavailable("keys.unreadable", f"cannot load key {info.kid}") from err
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise Unavailable("keys.unreadable", f"key {info.kid} is not an EC key")
            signers[info.kid] = jws.Signer(key)
        published = tuple(
            {**_public_members(signers[i.kid].public_jwk()), "kid": i.kid, "alg": i.alg}
            for i in manifest.keys
        )
        return _Loaded(manifest, stamp, signers, published)

    # use
    def active_kid(self) -> str:
        return self._refresh().manifest.active

    def sequence(self) -> int:
        return self._refresh().manifest.sequence

    def sign(self, claims: dict[str, Any], typ: str = "JWT") -> str:
        """Sign ``claims`` with the active key; headers are exactly alg, kid, typ.

        The header's members are in that (sorted) order and the claims are compact JSON
        in the order given, as zerolane has always written them (PyJWT's encoding).
        """
        loaded = self._refresh()
        active = loaded.manifest.active
        header = {"alg": ALGORITHM, "kid": active, "typ": typ}
        payload = json.dumps(claims, separators=(",", ":")).encode("utf-8")
        return loaded.signers[active].sign(header, payload)

    def public_keys(self) -> list[dict[str, str]]:
        """Public JWKs still published (active and retired-but-unexpired keys)."""
        return self.published()[1]

    def published(self) -> tuple[int, list[dict[str, str]]]:
        """The manifest's sequence with :meth:`public_keys`, from one reading: a cache
        of verifications keyed by the sequence must not pair it with other keys."""
        loaded = self._refresh()
        now = self._clock.now()
        live = {
            i.kid for i in loaded.manifest.keys if i.publish_until is None or i.publish_until > now
        }
        return loaded.manifest.sequence, [dict(k) for k in loaded.published if k["kid"] in live]

    def infos(self) -> tuple[KeyInfo, ...]:
        return self._refresh().manifest.keys
