"""A probe run as one self-contained HTML page a person reads (``zerolane probe
--report FILE.html``): the verdict and the counts first, then every scenario, findings
first, each with why, what it tried, its framework ids and its evidence.

The page loads nothing: its style is inline and its Content-Security-Policy allows no
script, no image, no font and no connection, so it opens the same from a CI artifact,
a mail attachment or a file share. Everything in it that came from the target or the
run (reasons, URLs, headers, response excerpts: attacker-influenced) is escaped.
"""

from __future__ import annotations

from html import escape

from zerolane.audit.events import rfc3339 as iso
from zerolane.probe import mapping
from zerolane.probe.model import Exchange, Outcome, Result
from zerolane.probe.report import Report
from zerolane.probe.report_json import TOOL, public_url, scenario_of

#: the order results are shown in: what needs attention first
ORDER = (Outcome.FAIL, Outcome.INCONCLUSIVE, Outcome.PASS, Outcome.NOT_APPLICABLE)
LABELS = {
    Outcome.FAIL: "fail",
    Outcome.INCONCLUSIVE: "inconclusive",
    Outcome.PASS: "pass",
    Outcome.NOT_APPLICABLE: "not applicable",
}
#: no script, no fetch of any kind: only the inline style
CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

CSS = """
:root { --fail: #b42318; --inconclusive: #b54708; --pass: #067647; --na: #475467;
  --line: #d0d5dd; --soft: #f2f4f7; --ink: #101828; --muted: #475467; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--ink); background: #fff; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 32px 0 12px; border-bottom: 1px solid var(--line);
  padding-bottom: 4px; }
h3 { font-size: 16px; margin: 0; }
code, pre { font: 13px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.meta { color: var(--muted); margin: 0; }
.meta dt { display: inline; font-weight: 600; }
.meta dd { display: inline; margin: 0 16px 0 4px; }
.verdict { margin: 16px 0; padding: 12px 16px; border-radius: 8px; font-weight: 600;
  color: #fff; }
.verdict.fail { background: var(--fail); }
.verdict.pass { background: var(--pass); }
.summary { display: flex; gap: 12px; flex-wrap: wrap; margin: 0; padding: 0;
  list-style: none; }
.summary li { flex: 1 1 150px; border: 1px solid var(--line); border-radius: 8px;
  padding: 10px 14px; border-top: 4px solid var(--na); }
.summary .n { display: block; font-size: 28px; font-weight: 700; }
.summary .fail { border-top-color: var(--fail); }
.summary .inconclusive { border-top-color: var(--inconclusive); }
.summary .pass { border-top-color: var(--pass); }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 6px 8px;
  border-bottom: 1px solid var(--line); }
th { background: var(--soft); font-weight: 600; }
.badge { display: inline-block; min-width: 88px; text-align: center; border-radius: 999px;
  padding: 1px 10px; font-size: 12px; font-weight: 700; color: #fff;
  text-transform: uppercase; letter-spacing: .03em; background: var(--na); }
.badge.fail { background: var(--fail); }
.badge.inconclusive { background: var(--inconclusive); }
.badge.pass { background: var(--pass); }
.result { border: 1px solid var(--line); border-left: 6px solid var(--na);
  border-radius: 8px; padding: 14px 18px; margin: 0 0 16px; }
.result.fail { border-left-color: var(--fail); }
.result.inconclusive { border-left-color: var(--inconclusive); }
.result.pass { border-left-color: var(--pass); }
.result header { display: flex; gap: 12px; align-items: baseline; flex-wrap: wrap; }
.result .id { color: var(--muted); }
.reason { margin: 8px 0; font-weight: 600; }
.what { margin: 4px 0; color: var(--muted); }
.mapping { display: grid; grid-template-columns: max-content 1fr; gap: 4px 12px;
  margin: 10px 0; }
.mapping dt { color: var(--muted); font-size: 13px; }
.mapping dd { margin: 0; }
.chip { display: inline-block; border: 1px solid var(--line); background: var(--soft);
  border-radius: 4px; padding: 0 6px; margin: 0 4px 2px 0; font-size: 13px; }
details { margin-top: 8px; }
summary { cursor: pointer; font-weight: 600; }
.exchange { border-top: 1px dashed var(--line); padding: 8px 0; }
.exchange .line { margin: 0 0 6px; }
.role { font-weight: 700; text-transform: uppercase; font-size: 12px; margin-right: 8px; }
.headers td:first-child { width: 220px; color: var(--muted); }
pre { background: var(--soft); border-radius: 4px; padding: 8px; margin: 6px 0 0;
  white-space: pre-wrap; word-break: break-all; }
footer { margin-top: 40px; color: var(--muted); font-size: 13px; }
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _anchor(scenario: str) -> str:
    return "r-" + "".join(c if c.isalnum() else "-" for c in scenario)


def _headers(headers: dict[str, str]) -> str:
    if not headers:
        return "<p class='what'>(none)</p>"
    rows = "".join(
        f"<tr><td>{_e(k)}</td><td><code>{_e(v)}</code></td></tr>" for k, v in headers.items()
    )
    return f"<table class='headers'>{rows}</table>"


def _exchange(exchange: Exchange) -> str:
    status = _e(exchange.status) if exchange.status is not None else "no answer"
    error = f"<p class='what'>error: {_e(exchange.error)}</p>" if exchange.error else ""
    excerpt = (
        f"<pre class='excerpt'>{_e(exchange.response_excerpt)}</pre>"
        if exchange.response_excerpt
        else ""
    )
    return (
        f"<div class='exchange {_e(exchange.role)}'>"
        f"<p class='line'><span class='role'>{_e(exchange.role)}</span>"
        f"<code>{_e(exchange.method)} {_e(exchange.url)}</code> &rarr; "
        f"<strong class='status'>{status}</strong> "
        f"<span class='what'>({exchange.elapsed_ms:.1f} ms, request body "
        f"{exchange.request_body_bytes} bytes)</span></p>"
        f"{error}"
        f"<details{' open' if exchange.role == 'attack' else ''}><summary>request headers"
        f"</summary>{_headers(exchange.request_headers)}"
        f"</details>"
        f"<details><summary>response headers</summary>{_headers(exchange.response_headers)}"
        f"</details>"
        f"{excerpt}</div>"
    )


def _mapping(scenario: str) -> str:
    rows = []
    for framework in mapping.FRAMEWORKS:
        ids = mapping.for_scenario(scenario).get(framework.key, ())
        if not ids:
            continue
        chips = "".join(
            f"<span class='chip' title='{_e(framework.entries[i])}'>{_e(i)} "
            f"{_e(framework.entries[i])}</span>"
            for i in ids
        )
        rows.append(f"<dt>{_e(framework.short)}</dt><dd>{chips}</dd>")
    return f"<dl class='mapping'>{''.join(rows)}</dl>"


def _result(report: Report, result: Result) -> str:
    scenario = scenario_of(report, result)
    outcome = result.outcome.value
    title = scenario.title if scenario else result.scenario
    what = (
        f"<p class='what'><strong>Attack:</strong> {_e(scenario.attack)}</p>"
        f"<p class='what'><strong>Expected:</strong> {_e(scenario.expect)}</p>"
        if scenario
        else ""
    )
    evidence = ""
    if result.evidence:
        opened = " open" if result.outcome is Outcome.FAIL else ""
        exchanges = "".join(_exchange(exchange) for exchange in result.evidence)
        evidence = (
            f"<details class='evidence'{opened}><summary>evidence: "
            f"{len(result.evidence)} exchange(s)</summary>{exchanges}</details>"
        )
    return (
        f"<section class='result {outcome}' id='{_anchor(result.scenario)}' "
        f"data-scenario='{_e(result.scenario)}' data-outcome='{outcome}'>"
        f"<header><span class='badge {outcome}'>{LABELS[result.outcome]}</span>"
        f"<h3>{_e(title)}</h3><code class='id'>{_e(result.scenario)}</code></header>"
        f"<p class='reason'>{_e(result.reason)}</p>{what}{_mapping(result.scenario)}"
        f"{evidence}</section>"
    )


def _ordered(report: Report) -> list[Result]:
    return sorted(report.results, key=lambda result: ORDER.index(result.outcome))


def render(report: Report) -> str:
    """The report as a complete HTML document."""
    counts = report.counts()
    target = public_url(report.target)
    failed = counts[Outcome.FAIL.value]
    verdict = (
        f"<p class='verdict fail' id='verdict'>{failed} attack(s) accepted by the target</p>"
        if report.failed
        else "<p class='verdict pass' id='verdict'>No attack was accepted</p>"
    )
    summary = "".join(
        f"<li class='{outcome.value}' data-outcome='{outcome.value}'>"
        f"<span class='n'>{counts[outcome.value]}</span>{LABELS[outcome]}</li>"
        for outcome in ORDER
    )
    overview = "".join(
        f"<tr><td><a href='#{_anchor(r.scenario)}'><code>{_e(r.scenario)}</code></a></td>"
        f"<td>{_e(s.title if (s := scenario_of(report, r)) else r.scenario)}</td>"
        f"<td><span class='badge {r.outcome.value}'>{LABELS[r.outcome]}</span></td></tr>"
        for r in _ordered(report)
    )
    sources = "".join(
        f"<li><a href='{_e(f.url)}' rel='noreferrer'>{_e(f.name)}</a></li>"
        for f in mapping.FRAMEWORKS
    )
    results = "".join(_result(report, result) for result in _ordered(report))
    seconds = max(report.finished - report.started, 0.0)
    return (
        "<!DOCTYPE html>\n"
        "<html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
        "<meta name='referrer' content='no-referrer'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>zerolane probe: {_e(target)}</title><style>{CSS}</style></head>"
        "<body><main>"
        "<h1>zerolane probe report</h1>"
        "<dl class='meta'>"
        f"<dt>target</dt><dd id='target'>{_e(target)}</dd>"
        f"<dt>credentials</dt><dd>{_e(report.credentials)}</dd>"
        f"<dt>started</dt><dd>{iso(report.started)}</dd>"
        f"<dt>took</dt><dd>{seconds:.1f} s</dd></dl>"
        f"{verdict}"
        f"<ul class='summary' id='summary'>{summary}</ul>"
        f"<h2>Scenarios</h2><table class='overview'><thead><tr><th>Scenario</th>"
        f"<th>Title</th><th>Outcome</th></tr></thead><tbody>{overview}</tbody></table>"
        f"<h2>Results</h2>{results}"
        f"<footer><p>{_e(TOOL)}: each scenario sends its legitimate twin first (not "
        "accepted: inconclusive), then the attack (refused: pass; accepted: fail). "
        "Credentials are masked in the evidence. Framework ids are from:</p>"
        f"<ul>{sources}</ul></footer>"
        "</main></body></html>\n"
    )
