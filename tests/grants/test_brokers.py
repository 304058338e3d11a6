"""The HMAC and static brokers, and grant templates."""

from __future__ import annotations

import pytest

from tests.grants.test_leases import Env, make_env
from zerolane.errors import InvalidInput, Unauthenticated
from zerolane.grants.broker import GrantTemplate, parse_template
from zerolane.grants.hmac_keys import HmacKeyBroker, verify_api_key
from zerolane.grants.static import StaticSecret, StaticSecretBroker

KEY = b"k" * 32


@pytest.fixture
def env() -> Env:
    return make_env()


def test_an_hmac_grant_is_a_key_of_the_task_that_lapses_with_it(env: Env) -> None:
    broker = HmacKeyBroker(KEY, ttl=300, clock=env.clock)
    task = env.task(ttl=60)
    secret = broker.issue(broker.new_handle(task), task, GrantTemplate("hmac"), task.expires_at)
    key = secret.values["api_key"]
    assert verify_api_key(KEY, key, env.clock.now()) == task.task_id
    assert int(secret.values["expires_at"]) == int(task.expires_at)  # the task is shorter
    with pytest.raises(Unauthenticated) as caught:
        verify_api_key(KEY, key, task.expires_at)
    assert caught.value.reason == "api_key.expired"
    assert "k" * 32 not in repr(broker)
    assert broker.new_handle(task) == f"zlk_{task.task_id}"  # the public part only


def test_an_hmac_grant_lives_at_most_its_ttl(env: Env) -> None:
    broker = HmacKeyBroker(KEY, ttl=300, clock=env.clock)
    task = env.task(ttl=3600)
    now = int(env.clock.now())
    default = broker.issue("h", task, GrantTemplate("hmac"), task.expires_at)
    assert int(default.values["expires_at"]) == now + 300
    shorter = broker.issue("h", task, GrantTemplate("hmac", ttl=30), task.expires_at)
    assert int(shorter.values["expires_at"]) == now + 30
    longer = broker.issue("h", task, GrantTemplate("hmac", ttl=9999), task.expires_at)
    assert int(longer.values["expires_at"]) == now + 300  # a playbook cannot widen it


def test_hmac_brokers_refuse_short_keys_and_bad_ttls() -> None:
    with pytest.raises(InvalidInput):
        HmacKeyBroker(b"short")
    with pytest.raises(InvalidInput):
        HmacKeyBroker(KEY, ttl=0)


def test_a_static_grant_is_legacy_and_the_same_for_every_task(env: Env) -> None:
    broker = StaticSecretBroker(StaticSecret("Authorization", "Bearer abc", origin="test"))
    assert broker.legacy
    one, two = env.task("tsk_1"), env.task("tsk_2")
    first = broker.issue(broker.new_handle(one), one, GrantTemplate("static"), one.expires_at)
    second = broker.issue(broker.new_handle(two), two, GrantTemplate("static"), two.expires_at)
    assert first.values == second.values == {"header": "Authorization", "value": "Bearer abc"}
    assert "abc" not in repr(broker)
    assert "abc" not in broker.new_handle(one)


@pytest.mark.parametrize(
    ("broker", "options", "reason"),
    [
        ("ldap", {}, "grant.broker_unknown"),
        ("postgres", {}, "grant.template"),
        ("postgres", {"role": "r", "extra": 1}, "grant.template"),
        ("postgres", "reader", "grant.template"),
        ("postgres", {"role": "r", "connection_limit": 0}, "grant.template"),
        ("postgres", {"role": "r", "connection_limit": True}, "grant.template"),
        ("hmac", {"ttl": 0}, "grant.template"),
        ("static", {"role": "r"}, "grant.template"),
    ],
)
def test_bad_templates_are_refused(broker: str, options: object, reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_template(broker, options)
    assert caught.value.reason == reason


def test_good_templates() -> None:
    assert parse_template("postgres", {"role": "reports_reader", "connection_limit": 2}) == (
        GrantTemplate("postgres", role="reports_reader", connection_limit=2)
    )
    assert parse_template("hmac", None) == GrantTemplate("hmac")
    assert parse_template("static", {}).as_dict() == {}
