"""The HTML report: one self-contained page (inline style, a CSP that allows no script
and no fetch), everything from the target escaped; in a real browser (Playwright
driving Debian's Chromium) the verdict, the counts and a finding with its evidence and
mapping render, nothing is fetched and nothing runs. The browser test takes a
screenshot; with ``ZEROLANE_SCREENSHOTS=1`` it writes docs/img/probe-report.png (so a
test run leaves the checkout as it was)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Dialog, sync_playwright

from tests.probe.report_fixtures import (  # noqa: F401  (fixtures)
    HOSTILE,
    Run,
    accept_all_url,
    made_report,
    weak_run,
)
from zerolane.probe import html

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "img" / "probe-report.png"
CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def test_the_page_is_self_contained_and_escapes_what_the_target_sent() -> None:
    page = html.render(made_report())
    assert page.startswith("<!DOCTYPE html>")
    assert "Content-Security-Policy" in page
    assert "default-src 'none'" in page
    # nothing loaded: no script, no stylesheet, no image, no frame
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b", page, re.IGNORECASE)
    assert re.findall(r"<[^>]*\s(?:src|on\w+)=", page) == []
    # links go to the framework pages (https) or to the page's own anchors
    for href in re.findall(r"href='([^']*)'", page):
        assert href.startswith(("https://", "#r-")), href
    # the hostile response, reason, title and headers show as text
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(&#x27;probe&#x27;)&lt;/script&gt;" in page
    assert "alg none &lt;accepted&gt;" in page
    assert "-&gt; 200 &lt;script&gt;" in page
    assert "&lt;i&gt;hi&lt;/i&gt;" in page
    assert "x=&lt;b&gt;&amp;y=&quot;quoted&quot;" in page
    assert "hunter2" not in page


def test_the_page_counts_every_outcome_and_shows_findings_first() -> None:
    page = html.render(made_report())
    assert "2 attack(s) accepted by the target" in page
    for outcome, count in {"fail": 2, "inconclusive": 1, "pass": 1, "not_applicable": 1}.items():
        assert f"data-outcome='{outcome}'><span class='n'>{count}</span>" in page
    order = [m.group(1) for m in re.finditer(r"<section class='result (\w+)'", page)]
    assert order == ["fail", "fail", "inconclusive", "pass", "not_applicable"]
    # a finding carries its framework ids with their titles; an unknown scenario none
    assert "NHI4:2025 Insecure Authentication" in page
    assert "PR.AC-7" in page
    assert "no answer" in page  # the inconclusive twin that got none


def test_a_report_where_every_attack_was_refused_says_so() -> None:
    report = made_report()
    passed = type(report)(
        report.target,
        report.credentials,
        report.started,
        report.finished,
        report.scenarios,
        tuple(r for r in report.results if r.outcome.value == "pass"),
    )
    page = html.render(passed)
    assert "No attack was accepted" in page
    assert "class='verdict pass'" in page


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.mark.e2e
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_the_report_of_a_real_run_renders_in_a_browser(
    browser: Browser,
    weak_run: Run,  # noqa: F811
    tmp_path: Path,
) -> None:
    report_file = tmp_path / "probe-report.html"
    text = html.render(weak_run.report)
    for secret in weak_run.secrets:
        assert secret not in text
    report_file.write_text(text, encoding="utf-8")
    page = browser.new_page(viewport={"width": 1280, "height": 1500})
    fetched: list[str] = []
    dialogs: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))

    def dismissed(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismissed)
    page.goto(report_file.as_uri())

    failed = sum(r.outcome.value == "fail" for r in weak_run.report.results)
    assert failed >= 2
    assert page.locator("#verdict").inner_text() == f"{failed} attack(s) accepted by the target"
    count = page.locator("#summary li[data-outcome='fail'] .n")
    assert count.inner_text() == str(failed)
    assert page.locator("#target").inner_text() == weak_run.report.target

    finding = page.locator("section[data-scenario='token.no_proof']")
    assert finding.get_attribute("data-outcome") == "fail"
    assert finding.locator("h3").inner_text() == "Token without its proof"
    assert "the attack was accepted" in finding.locator(".reason").inner_text()
    assert finding.locator(".chip", has_text="NHI4:2025").is_visible()
    evidence = finding.locator("details.evidence")
    assert evidence.get_attribute("open") is not None
    attack = evidence.locator(".exchange.attack").first
    assert attack.is_visible()
    assert attack.locator(".status").inner_text() == "200"
    # what the attack sent is shown, its credential masked
    sent = attack.locator("table.headers").first.inner_text()
    assert "authorization" in sent.lower()
    assert "***(sha256:" in sent
    # the target's hostile answer is shown as text and did nothing
    assert HOSTILE in attack.locator(".excerpt").inner_text()
    assert dialogs == []
    assert page.locator("img").count() == 0
    assert fetched == [report_file.as_uri()]

    shot = SCREENSHOT if os.environ.get("ZEROLANE_SCREENSHOTS") else tmp_path / "report.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    page.close()
