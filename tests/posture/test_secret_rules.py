"""zerolane's own secret rules: which place a file is, what each place's rules report
(a literal under a secret-named key) and what they leave (references, placeholders)."""

from __future__ import annotations

import pytest

from tests.posture.planted import rand
from zerolane.posture.secret_rules import (
    Place,
    is_placeholder,
    is_secret_key,
    place_of,
    rule_hits,
    type_of_key,
)

SECRET = rand(24)


@pytest.mark.parametrize(
    ("shown", "text", "place"),
    [
        (".github/workflows/ci.yml", "", Place.GITHUB_ACTIONS),
        (".github/workflows/notes.md", "", Place.FILE),
        (".gitlab-ci.yml", "", Place.GITLAB_CI),
        ("ci/deploy.gitlab-ci.yaml", "", Place.GITLAB_CI),
        (".env", "", Place.DOTENV),
        ("app/.env.production", "", Place.DOTENV),
        ("prod.env", "", Place.DOTENV),
        ("bin/deploy.sh", "", Place.SHELL),
        ("bin/deploy", "#!/usr/bin/env bash\n", Place.SHELL),
        ("bin/tool", "#!/usr/bin/python3\n", Place.FILE),
        ("home/.kube/config", "", Place.KUBECONFIG),
        ("ci.kubeconfig", "", Place.KUBECONFIG),
        ("kubeconfig.py", "", Place.FILE),
        ("k8s/admin.yaml", "apiVersion: v1\nkind: Config\n", Place.KUBECONFIG),
        ("k8s/pod.yaml", "apiVersion: v1\nkind: Pod\n", Place.FILE),
        ("home/.aws/credentials", "", Place.AWS_CREDENTIALS),
        ("backup/credentials", "aws_secret_access_key = x\n", Place.AWS_CREDENTIALS),
        ("sa.json", '{"type": "service_account"}', Place.GCP_SERVICE_ACCOUNT),
        ("home/.azure/msal_token_cache.json", "", Place.AZURE_CREDENTIALS),
        ("auth.json", '{"clientSecret": "x", "tenantId": "y"}', Place.AZURE_CREDENTIALS),
        ("home/.docker/config.json", "", Place.DOCKER_CONFIG),
        ("ci/config.json", '{"auths": {}}', Place.DOCKER_CONFIG),
        ("app/config.json", '{"name": "x"}', Place.FILE),
        ("infra/terraform.tfstate", "", Place.TERRAFORM_STATE),
        ("infra/terraform.tfstate.backup", "", Place.TERRAFORM_STATE),
        ("src/app.py", "", Place.FILE),
    ],
)
def test_place_of(shown: str, text: str, place: Place) -> None:
    assert place_of(shown, text) is place


@pytest.mark.parametrize(
    "value",
    [
        "",
        "short",
        "${{ secrets.DEPLOY_TOKEN }}",
        "$DEPLOY_TOKEN",
        "${DEPLOY_TOKEN}",
        "$(cat /run/secrets/token)",
        "{{ .Values.token }}",
        "<your-token-here>",
        "%DEPLOY_TOKEN%",
        "changeme123",
        "example-token-value",
        "xxxxxxxxxxxx",
        "************",
        "password",
        "12345678901",
        "/run/secrets/token",
        "https://vault.internal/v1/secret",
        "aaaaaaaaaaaaaaa",
    ],
)
def test_placeholders_and_references_are_no_secret(value: str) -> None:
    assert is_placeholder(value)


@pytest.mark.parametrize("value", [SECRET, "s3cr3t-Pa55w0rd", "https://u:" + SECRET + "@h"])
def test_literals_are_secrets(value: str) -> None:
    assert not is_placeholder(value)


@pytest.mark.parametrize(
    ("key", "secret", "kind"),
    [
        ("DB_PASSWORD", True, "Password"),
        ("clientSecret", True, "Client secret"),
        ("AWS_SECRET_ACCESS_KEY", True, "Access key"),
        ("DJANGO_SECRET_KEY", True, "Secret key"),
        ("api-key", True, "API key"),
        ("GITHUB_TOKEN", True, "Token"),
        ("client-key-data", True, "Private key"),
        ("private_key_pem", True, "Private key"),
        ("identitytoken", True, "Token"),
        ("auth", True, "Credentials"),
        ("SECRET", True, "Secret"),
        ("PASSWORD_FILE", False, None),
        ("TOKEN_URL", False, None),
        ("PUBLIC_KEY", False, None),
        ("AWS_ACCESS_KEY_ID", False, None),
        ("secretName", False, None),
        ("BYPASS", False, None),
    ],
)
def test_secret_keys(key: str, secret: bool, kind: str | None) -> None:
    assert is_secret_key(key) is secret
    if kind:
        assert type_of_key(key) == kind


def _hits(place: Place, text: str) -> list[tuple[int, str, str | None]]:
    return [(h.line, h.value, h.key) for h in rule_hits(place, text.split("\n"))]


def test_github_actions_literal_not_reference() -> None:
    text = (
        "jobs:\n  a:\n    env:\n      GH_TOKEN: ${{ secrets.GH_TOKEN }}\n"
        f"      API_TOKEN: '{SECRET}'\n    steps:\n      - uses: some/action@v1\n"
        f"        with:\n          password: {SECRET}  # a comment\n"
        "          username: deploy-user-name\n"
        f'      - run: curl -H "Authorization: Bearer {SECRET}" https://x\n'
        "      - run: |\n"
        f"          export NPM_TOKEN={SECRET}\n"
        '          curl -H "Authorization: Bearer ${{ secrets.T }}" https://x\n'
        f"          curl --user ci:{SECRET} https://x\n"
        "      - run: curl -u ci:$PASSWORD https://x\n"
        "      - name: a description with spaces in it\n"
        "        token: some words that are prose\n"
    )
    assert _hits(Place.GITHUB_ACTIONS, text) == [
        (5, SECRET, "API_TOKEN"),
        (9, SECRET, "password"),
        (13, SECRET, "NPM_TOKEN"),
        (11, SECRET, "Authorization"),
        (15, SECRET, "--user"),
    ]


def test_gitlab_variables() -> None:
    text = f'variables:\n  DB_PASSWORD: "{SECRET}"\n  API_TOKEN: $API_TOKEN\n  X_TOKEN: ""\n'
    assert _hits(Place.GITLAB_CI, text) == [(2, SECRET, "DB_PASSWORD")]


def test_dotenv() -> None:
    text = (
        f"# a comment\nexport API_KEY={SECRET}\nDB_PASSWORD='{SECRET}' # x\n"
        "EMPTY_TOKEN=\nADMIN_PASSWORD=changeme\nHOST=db.internal\n"
    )
    assert _hits(Place.DOTENV, text) == [(2, SECRET, "API_KEY"), (3, SECRET, "DB_PASSWORD")]


def test_shell() -> None:
    text = (
        f'#!/bin/sh\nexport AWS_SECRET_ACCESS_KEY={SECRET}\nlocal TOKEN="{SECRET}"\n'
        f"curl -H 'X-Api-Key: {SECRET}' https://x\n"
        f'curl --header "PRIVATE-TOKEN: {SECRET}" https://gitlab\n'
        'TOKEN="$(vault read -field=token x)"\n'
    )
    assert _hits(Place.SHELL, text) == [
        (2, SECRET, "AWS_SECRET_ACCESS_KEY"),
        (3, SECRET, "TOKEN"),
        (4, SECRET, "X-Api-Key"),
        (5, SECRET, "PRIVATE-TOKEN"),
    ]


def test_kubeconfig_reports_keys_and_tokens_not_certificates() -> None:
    text = (
        "users:\n- name: a\n  user:\n"
        f"    client-certificate-data: {SECRET}\n    client-key-data: {SECRET}\n"
        f"    token: {SECRET}\n    password: {SECRET}\n    username: {SECRET}\n"
    )
    assert [h[0] for h in _hits(Place.KUBECONFIG, text)] == [5, 6, 7]


def test_aws_credentials() -> None:
    text = (
        f"[ci]\naws_access_key_id = AKIAEXAMPLEID\naws_secret_access_key = {SECRET}\n"
        f"aws_session_token={SECRET}\nregion = us-east-1\n"
    )
    assert _hits(Place.AWS_CREDENTIALS, text) == [
        (3, SECRET, "aws_secret_access_key"),
        (4, SECRET, "aws_session_token"),
    ]


def test_gcp_service_account_private_key() -> None:
    key = "-----BEGIN PRIVATE KEY-----\\nMIIE" + SECRET + "\\n-----END PRIVATE KEY-----\\n"
    text = f'{{\n  "type": "service_account",\n  "private_key": "{key}",\n  "x": "y"\n}}'
    assert _hits(Place.GCP_SERVICE_ACCOUNT, text) == [(3, key, "private_key")]


def test_azure_json_and_ini() -> None:
    text = f'{{"clientSecret": "{SECRET}", "tenantId": "t"}}\nsecret = {SECRET}\nclient_id = x\n'
    assert _hits(Place.AZURE_CREDENTIALS, text) == [
        (1, SECRET, "clientSecret"),
        (2, SECRET, "secret"),
    ]


def test_docker_config_auths() -> None:
    text = f'{{\n  "auths": {{\n    "r.io": {{\n      "auth": "{SECRET}"\n    }}\n  }},\n'
    text += '  "credsStore": "desktop"\n}\n'
    (hit,) = rule_hits(Place.DOCKER_CONFIG, text.split("\n"))
    assert (hit.line, hit.value, hit.secret_type) == (4, SECRET, "Registry credentials")
    token = f'{{"identitytoken": "{SECRET}"}}'
    (other,) = rule_hits(Place.DOCKER_CONFIG, [token])
    assert other.secret_type == "Token"


def test_terraform_state_sensitive_attributes() -> None:
    text = (
        '{\n  "attributes": {\n    "username": "admin",\n'
        f'    "password": "{SECRET}",\n    "private_key_pem": "-----BEGIN RSA PRIVATE KEY-----'
        f'\\nMIIE{SECRET}",\n    "public_key_pem": "{SECRET}",\n    "token": null\n  }}\n}}'
    )
    assert [h[0] for h in _hits(Place.TERRAFORM_STATE, text)] == [4, 5]


def test_a_file_of_no_place_has_no_rule() -> None:
    assert rule_hits(Place.FILE, [f"PASSWORD={SECRET}"]) == []


def test_a_user_option_of_equals_signs_is_read_once_and_a_password_still_found() -> None:
    # '-u' then 100,000 '=' and no colon: every split of the run was tried (quadratic:
    # about a minute); the run is now taken whole and the line has no password
    assert rule_hits(Place.SHELL, ["curl -u" + "=" * 100_000]) == []
    assert [(h.value, h.key) for h in rule_hits(Place.SHELL, [f"curl -u=bot:{SECRET} x"])] == [
        (SECRET, "--user")
    ]
    assert [h.value for h in rule_hits(Place.SHELL, [f"curl --user 'bot:{SECRET}' x"])] == [SECRET]
