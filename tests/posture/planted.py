"""Trees for posture scan tests, built at test time: one planted secret of each kind at
a known line (the values random, never committed), and clean trees of references and
placeholders only."""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import string
from dataclasses import dataclass, field
from pathlib import Path

ALNUM = string.ascii_letters + string.digits
REPO = Path(__file__).resolve().parents[2]


def rand(n: int, alphabet: str = ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def aws_key_id() -> str:
    return "AKIA" + rand(16, string.ascii_uppercase + "234567")


def github_token() -> str:
    return "ghp_" + rand(36)


def pem_key() -> str:
    body = base64.b64encode(secrets.token_bytes(600)).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join(["-----BEGIN PRIVATE KEY-----", *lines, "-----END PRIVATE KEY-----", ""])


@dataclass
class Planted:
    """The tree's root, and each planted secret: (file, line, rule) -> raw value."""

    root: Path
    expected: dict[tuple[str, int, str], str] = field(default_factory=dict)

    def write(self, name: str, text: str, *plants: tuple[int, str, str]) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        for line, rule, value in plants:
            assert value in text.split("\n")[line - 1] or "\\n" in value, (name, line)
            self.expected[(name, line, rule)] = value


def plant_tree(root: Path) -> Planted:
    """One secret of each kind (two where a file holds two), at known lines."""
    tree = Planted(root)
    ci_token = rand(32)
    tree.write(
        ".github/workflows/deploy.yml",
        "on: push\njobs:\n  deploy:\n    env:\n      GH_TOKEN: ${{ secrets.GH_TOKEN }}\n"
        f"      DEPLOY_TOKEN: {ci_token}\n    steps:\n      - uses: actions/checkout@v4\n",
        (6, "secret.github_actions", ci_token),
    )
    gitlab = rand(20)
    tree.write(
        ".gitlab-ci.yml",
        f'variables:\n  DATABASE_PASSWORD: "{gitlab}"\n  API_KEY: $CI_API_KEY\n'
        "test:\n  script:\n    - make test\n",
        (2, "secret.gitlab_ci", gitlab),
    )
    dotenv = "sk_" + rand(30)
    tree.write(
        "app/.env",
        f"DEBUG=true\nSERVICE_SECRET={dotenv}\nEMPTY_TOKEN=\nADMIN_PASSWORD=changeme\n",
        (2, "secret.dotenv", dotenv),
    )
    aws_secret, bearer = rand(40), rand(40)
    tree.write(
        "scripts/deploy.sh",
        "#!/bin/sh\nset -eu\n"
        f"export AWS_SECRET_ACCESS_KEY={aws_secret}\n"
        f'curl -H "Authorization: Bearer {bearer}" https://api.internal/deploy\n'
        'curl -H "Authorization: Bearer $TOKEN" https://api.internal/status\n',
        (3, "secret.shell", aws_secret),
        (4, "secret.shell", bearer),
    )
    kube_key = base64.b64encode(pem_key().encode()).decode()
    cert = base64.b64encode(b"-----BEGIN CERTIFICATE-----\n" + secrets.token_bytes(90)).decode()
    tree.write(
        "deploy/kubeconfig.yaml",
        "apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster:\n"
        "    server: https://k8s.internal:6443\nusers:\n- name: ci\n  user:\n"
        f"    client-certificate-data: {cert}\n    client-key-data: {kube_key}\n",
        (11, "secret.kubeconfig", kube_key),
    )
    key_id, aws_key = aws_key_id(), rand(40)
    tree.write(
        "home/.aws/credentials",
        f"[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {aws_key}\n"
        "region = eu-west-1\n",
        (2, "secret.aws_credentials", key_id),
        (3, "secret.aws_credentials", aws_key),
    )
    gcp = pem_key()
    account = {
        "type": "service_account",
        "project_id": "demo",
        "private_key_id": rand(40, "0123456789abcdef"),
        "private_key": gcp,
        "client_email": "ci@demo.iam.gserviceaccount.com",
    }
    tree.write(
        "gcp/ci-sa.json",
        json.dumps(account, indent=2) + "\n",
        (5, "secret.gcp_service_account", json.dumps(gcp)[1:-1]),
    )
    azure = rand(34, ALNUM + "~_")
    tree.write(
        "azure/sdk-auth.json",
        json.dumps({"clientId": rand(8), "clientSecret": azure, "tenantId": rand(8)}, indent=2)
        + "\n",
        (3, "secret.azure_credentials", azure),
    )
    auth = base64.b64encode(f"ci:{rand(24)}".encode()).decode()
    tree.write(
        "home/.docker/config.json",
        json.dumps({"auths": {"registry.internal": {"auth": auth}}}, indent=2) + "\n",
        (4, "secret.docker_config", auth),
    )
    tf = rand(24)
    state = {
        "version": 4,
        "resources": [
            {
                "type": "aws_db_instance",
                "instances": [{"attributes": {"username": "app", "password": tf}}],
            }
        ],
    }
    text = json.dumps(state, indent=2) + "\n"
    line = next(i for i, x in enumerate(text.split("\n"), 1) if '"password"' in x)
    tree.write("infra/terraform.tfstate", text, (line, "secret.terraform_state", tf))
    ghp = github_token()
    tree.write(
        "src/settings.py",
        f'"""Settings."""\n\nDEBUG = False\nGITHUB = "{ghp}"\n',
        (4, "secret.file", ghp),
    )
    return tree


CLEAN_FILES = {
    ".github/workflows/ci.yml": (
        "on: [push]\njobs:\n  test:\n    env:\n      GH_TOKEN: ${{ secrets.GH_TOKEN }}\n"
        "      NPM_TOKEN: ${{ secrets.NPM }}\n    steps:\n      - uses: docker/login-action@v3\n"
        "        with:\n          password: ${{ secrets.REGISTRY_PASSWORD }}\n"
        '      - run: curl -H "Authorization: Bearer $TOKEN" https://api.internal\n'
    ),
    ".gitlab-ci.yml": "variables:\n  DB_PASSWORD: $DB_PASSWORD\n  API_TOKEN: ${API_TOKEN}\n",
    ".env.example": "API_KEY=<your api key>\nDB_PASSWORD=changeme\nSECRET_KEY=\nTOKEN=xxxxxxxx\n",
    "scripts/run.sh": (
        '#!/usr/bin/env bash\nexport GITHUB_TOKEN="$(cat /run/secrets/token)"\n'
        'PASSWORD_FILE=/run/secrets/db\ncurl -u "ci:$CI_PASSWORD" https://x.internal\n'
    ),
    "kubeconfig.yaml": (
        "apiVersion: v1\nkind: Config\nusers:\n- name: ci\n  user:\n    exec:\n"
        "      command: aws\n    tokenFile: /var/run/secrets/token\n"
    ),
    "home/.aws/config": "[default]\nregion = eu-west-1\noutput = json\n",
    "home/.docker/config.json": (
        '{\n  "credsStore": "osxkeychain",\n  "auths": {"ghcr.io": {}}\n}\n'
    ),
    "infra/terraform.tfstate": (
        '{\n  "version": 4,\n  "resources": [{"instances": [{"attributes": '
        '{"password": null, "secret_name": "db"}}]}]\n}\n'
    ),
    "package-lock.json": '{\n  "integrity": "sha512-' + "A" * 20 + 'abc"\n}\n',
}


def clean_tree(root: Path) -> Path:
    """A realistic tree with no secret: a slice of this repository's own code and docs,
    and CI, .env, shell, kubeconfig, cloud and Terraform files that hold only
    references and placeholders."""
    shutil.copytree(REPO / "src" / "zerolane" / "posture", root / "src" / "posture")
    shutil.copytree(REPO / "src" / "zerolane" / "probe", root / "src" / "probe")
    shutil.copytree(REPO / "docs", root / "docs")
    shutil.copy(REPO / "README.md", root / "README.md")
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    for name, text in CLEAN_FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root
