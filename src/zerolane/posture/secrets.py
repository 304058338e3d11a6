"""Long-lived secrets in files: each file read once, detect-secrets' pattern plugins
(:mod:`zerolane.posture.detect`) and the rules of its place
(:mod:`zerolane.posture.secret_rules`) run on it, and one :class:`Finding` per secret
and line, its value masked.

When both see one secret on one line (a ``ghp_`` token under ``GH_TOKEN:`` in a
workflow), it is reported once: the place's rule says where and under which key,
detect-secrets what kind of secret it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from zerolane.posture.detect import Detector, allowlisted
from zerolane.posture.findings import Finding, Note, Severity, mask
from zerolane.posture.secret_rules import Hit, Place, place_of, rule_hits
from zerolane.posture.walk import Source, read_text, sources

#: every secret in a file is leaked to whoever reads the file (NHI2) and, being
#: written down, lives until someone rotates it (NHI7)
_LEAKED = ("NHI2:2025", "NHI7:2025")
#: a CI file's literal is also NHI6: OWASP names static credentials in CI/CD, where OIDC
#: federation should be used, among insecure cloud deployment configurations. Not
#: claimed for a kubeconfig or a cloud credential file: a file does not show whether a
#: deployment or a person uses it (NHI6, NHI10) or in which environment (NHI8)
_CI = ("NHI2:2025", "NHI6:2025", "NHI7:2025")
#: the most secrets (detect-secrets' and the rules' hits) one file is reported with: a
#: file of thousands is one problem, and a line of thousands would make merging them
#: (each compared with the others of its line) slow
MAX_HITS = 1000


def _inject(who: str) -> str:
    return (
        "route the calls through the zerolane gateway, which injects the credential (a "
        'route\'s `credential = { type = "static", secret_file = ... }` kept outside the '
        "repository, or a per-task grant from a broker: `hmac`, `postgres`) so that "
        f"{who} never holds it"
    )


def _ci_remedy(ci: str) -> str:
    return (
        "Rotate it and delete it from the file. Let the job attest with the OIDC token of "
        f"{ci} (a `[[jwt_issuers]]` entry, the job registered with `zerolane workload register` "
        "and selectors from its claims) and open a task per run; " + _inject("the job")
    )


@dataclass(frozen=True, slots=True)
class PlaceInfo:
    """How findings of one place are reported."""

    title: str
    nhi: tuple[str, ...]
    remedy: str
    #: a secret found by its key's name alone is ``medium`` elsewhere; in a credential
    #: file every value under a secret key is a live credential
    credential_file: bool = False


PLACES: dict[Place, PlaceInfo] = {
    Place.GITHUB_ACTIONS: PlaceInfo(
        "Long-lived secret in a GitHub Actions workflow",
        _CI,
        _ci_remedy("GitHub Actions")
        + "; a `${{ secrets.NAME }}` reference is not a finding, a literal is.",
    ),
    Place.GITLAB_CI: PlaceInfo(
        "Long-lived secret in a GitLab CI file",
        _CI,
        _ci_remedy("GitLab CI (`id_tokens:`)")
        + "; a masked CI/CD variable (`$NAME`) is not a finding, a literal is.",
    ),
    Place.DOTENV: PlaceInfo(
        "Long-lived secret in a .env file",
        _LEAKED,
        "Rotate it and delete it from the file. Register the service as a workload "
        "(`zerolane workload register`) that opens a task for its work, and "
        + _inject("the service")
        + ".",
    ),
    Place.SHELL: PlaceInfo(
        "Long-lived secret in a shell script",
        _LEAKED,
        "Rotate it and delete it from the script. Run the script as a workload "
        "(`zerolane workload register`, attested by a join token or its platform's JWT) "
        "with a task per run, and " + _inject("the script") + ".",
    ),
    Place.KUBECONFIG: PlaceInfo(
        "Long-lived credential in a kubeconfig",
        _LEAKED,
        "Rotate the key or token. Workloads in a cluster attest with their projected "
        "service-account token (a `[[jwt_issuers]]` entry for the cluster, `zerolane "
        "workload register` with `k8s-ns`/`k8s-sa` selectors) instead of a kubeconfig "
        "holding a key; automation outside it opens a task and reaches the API server "
        "through the zerolane gateway, which injects the credential.",
        credential_file=True,
    ),
    Place.AWS_CREDENTIALS: PlaceInfo(
        "Long-lived AWS access key in a credentials file",
        _LEAKED,
        "Deactivate and delete the access key. Let the job attest as a workload "
        "(`zerolane workload register`) and open a task; calls go through the zerolane "
        "gateway, which injects the credential, or the job federates its OIDC token to "
        "AWS STS for credentials that expire with the task.",
        credential_file=True,
    ),
    Place.GCP_SERVICE_ACCOUNT: PlaceInfo(
        "Google Cloud service-account key file",
        _LEAKED,
        "Delete the service-account key. Use workload identity federation (the job's "
        "OIDC token for short-lived Google credentials), and let the job attest to "
        "zerolane as a workload (`zerolane workload register`) with a task per run; "
        + _inject("the job")
        + ".",
        credential_file=True,
    ),
    Place.AZURE_CREDENTIALS: PlaceInfo(
        "Long-lived Azure credential in a file",
        _LEAKED,
        "Rotate the client secret or token. Give the service principal a federated "
        "credential (the job's OIDC token) instead of a secret, and let the job attest "
        "to zerolane as a workload with a task per run; " + _inject("the job") + ".",
        credential_file=True,
    ),
    Place.DOCKER_CONFIG: PlaceInfo(
        "Registry credentials in a Docker config.json",
        _LEAKED,
        "Log out (`docker logout`) and rotate the password or token; use a credential "
        "helper (`credsStore`) on machines, and in CI a registry token the job gets per "
        "run from its OIDC identity (a workload with a task), never a stored password.",
        credential_file=True,
    ),
    Place.TERRAFORM_STATE: PlaceInfo(
        "Secret in a Terraform state file",
        _LEAKED,
        "A state file holds its resources' secrets in clear: keep it in an encrypted "
        "remote backend readable by the pipeline alone, never in a repository, and rotate "
        "what it held. Let the resource's users get their credential per task from a "
        "grant broker (`postgres`: a login role that ends with the task) instead of a "
        "standing password.",
        credential_file=True,
    ),
    Place.FILE: PlaceInfo(
        "Long-lived secret in a file",
        _LEAKED,
        "Rotate it and delete it from the file. Register whatever uses it as a workload "
        "(`zerolane workload register`) that opens a task for its work, and " + _inject("it") + ".",
    ),
}


def _overlap(a: str, b: str) -> bool:
    return a in b or b in a


def merged(hits: Iterable[Hit]) -> list[Hit]:
    """One hit per secret and line: the rules' hits first (they know the key), a
    detect-secrets hit of the same secret adding its more exact type."""
    kept: list[Hit] = []
    for hit in sorted(hits, key=lambda h: (h.line, h.detector != "zerolane")):
        same = next(
            (i for i, k in enumerate(kept) if k.line == hit.line and _overlap(k.value, hit.value)),
            None,
        )
        if same is None:
            kept.append(hit)
        elif hit.detector != kept[same].detector:
            old = kept[same]
            kept[same] = Hit(old.line, old.value, hit.secret_type, old.key, "both")
    return kept


def finding(place: Place, shown: str, hit: Hit) -> Finding:
    """The finding of one hit in the file shown as ``shown``."""
    info = PLACES[place]
    known = hit.detector != "zerolane"  # a provider's shape, not only a key's name
    severity = Severity.HIGH if known or info.credential_file else Severity.MEDIUM
    under = f" under `{hit.key}`" if hit.key else ""
    details: dict[str, object] = {"detector": hit.detector}
    if hit.key:
        details["key"] = hit.key
    return Finding(
        rule=f"secret.{place.value}",
        title=info.title,
        severity=severity,
        nhi=info.nhi,
        message=f"{hit.secret_type} stored in clear{under}",
        remedy=info.remedy,
        path=shown,
        line=hit.line,
        secret_type=hit.secret_type,
        masked=mask(hit.value, shaped=known),
        details=details,
    )


@dataclass
class SecretScan:
    """What a scan of files found, what it could not read, how many files it read."""

    findings: list[Finding]
    notes: list[Note]
    files: int = 0


def scan_text(detector: Detector, shown: str, text: str, notes: list[Note]) -> list[Finding]:
    """The findings in one file's ``text`` (named ``shown`` in the report): at most
    :data:`MAX_HITS` secrets, the first ones, and then a note (into ``notes``)."""
    split: list[list[str]] = []

    def lines() -> list[str]:
        if not split:
            split.append(text.split("\n"))
        return split[0]

    place = place_of(shown, text)
    hits = detector.hits(text, lines)
    if place is not Place.FILE:
        hits += rule_hits(place, [line.rstrip("\r") for line in lines()])
    if not hits:
        return []
    if len(hits) > MAX_HITS:  # merging compares the hits of a line with each other
        hits = sorted(hits, key=lambda h: h.line)[:MAX_HITS]
        notes.append(Note(shown, f"more than {MAX_HITS} secrets: the first ones reported"))
    allowed: dict[int, bool] = {}  # per line: a line's allowlist comment is read once
    found: list[Finding] = []
    for hit in merged(hits):
        if hit.line not in allowed:
            allowed[hit.line] = allowlisted(shown, lines(), hit.line)
        if not allowed[hit.line]:
            found.append(finding(place, shown, hit))
    return found


def scan_files(
    paths: list[Path], *, progress: Callable[[Source], None] | None = None
) -> SecretScan:
    """Scan the files of ``paths`` (folders walked, files as given; see
    :mod:`zerolane.posture.walk`). A path that does not exist raises
    ``FileNotFoundError`` before anything is read."""
    detector = Detector()
    result = SecretScan([], [])
    for source in sources(paths, result.notes):
        if progress is not None:
            progress(source)
        text = read_text(source, result.notes)
        if text is None:
            continue
        result.files += 1
        result.findings.extend(scan_text(detector, source.shown, text, result.notes))
    result.findings.sort(key=Finding.sort_key)
    return result
