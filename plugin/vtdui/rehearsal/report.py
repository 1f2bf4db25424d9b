"""The rehearsal's evidence: one self-contained HTML report, the payloads for EVSClient, the redacted traces.

``OUT/report.html`` has no external resource (inline CSS and SVG, no script, no font or image to fetch);
``OUT/payloads/<scenario>-<n>-esms-task.json`` (or ``esms-consent``) are the resources as sent, to submit to
EVSClient; ``OUT/traces/<scenario>.trace.json`` every exchange of the scenario; ``OUT/results.json`` the
verdicts. Health data and secrets are removed the way ``vtdui evidence`` removes them (payloads and traces
went through :func:`vtdui.evidence.redact_health`; ``Authorization`` is ``***`` from the HTTP client on).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from vtdui.evidence import redact_health
from vtdui.rehearsal.runner import ScenarioResult, StepResult

__all__ = ["write_evidence"]

CSS = """
body{font-family:sans-serif;margin:2em;color:#222;max-width:72em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
.pass{color:#fff;background:#2a7d2a}.fail{color:#fff;background:#b22}.notrun{color:#222;background:#ddd}
.verdict{padding:.1em .5em;border-radius:.3em;font-weight:bold}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;
vertical-align:top;font-size:.9em}pre{background:#f6f6f6;padding:.5em;overflow:auto;max-height:24em;font-size:.8em}
details{margin:.3em 0}.failure{color:#b22;font-weight:bold}
"""

_POINTS = (("save", "DUI save"), ("queued", "vtdui"), ("sent", "ViaTrajectoire"), ("answered", "answer"))


def _write(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def timeline_svg(step: StepResult) -> str:
    """An inline SVG of the step's exchanges: DUI save -> vtdui -> ViaTrajectoire -> answer, in ms."""
    points = [(label, step.times[key]) for key, label in _POINTS if key in step.times]
    if not points:
        return ""
    origin = points[0][1]
    span = max(max(t for _, t in points) - origin, 0.001)
    width, left, right = 640, 20, 20
    # one label row per point, under the axis, so that points a few ms apart never print over each other
    axis, height = 12, 28 + 16 * len(points)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="timeline">',
             f'<line x1="{left}" y1="{axis}" x2="{width - right}" y2="{axis}" stroke="#888" stroke-width="2"/>']
    for index, (label, stamp) in enumerate(points):
        x = left + (stamp - origin) / span * (width - left - right)
        y = 30 + 16 * index
        anchor, dx = ("end", -4) if x > width / 2 else ("start", 4)
        parts.append(f'<line x1="{x:.1f}" y1="{axis}" x2="{x:.1f}" y2="{y - 4}" stroke="#bbb" '
                     f'stroke-dasharray="2,2"/>')
        parts.append(f'<circle cx="{x:.1f}" cy="{axis}" r="5" fill="#2a5d9f"/>')
        parts.append(f'<text x="{x + dx:.1f}" y="{y}" font-size="11" text-anchor="{anchor}">'
                     f'{escape(label)} +{(stamp - origin) * 1000:.0f} ms</text>')
    parts.append("</svg>")
    return "".join(parts)


def _verdict(verdict: str) -> str:
    css = {"pass": "pass", "fail": "fail"}.get(verdict, "notrun")
    return f'<span class="verdict {css}">{escape(verdict.upper())}</span>'


def _status(task: dict[str, Any] | None) -> str:
    if not task:
        return "absent"
    codes = [c.get("code") for c in (task.get("businessStatus") or {}).get("coding", [])]
    version = (task.get("meta") or {}).get("versionId")
    return f"Task/{task.get('id')} version {version}, status {', '.join(map(str, codes)) or '-'}"


def _step_html(step: StepResult) -> str:
    rows = [f"<h4>{escape(step.label)} {_verdict('pass' if step.ok else 'fail')}</h4>"]
    if step.failure:
        rows.append(f'<p class="failure">{escape(step.failure)}' +
                    (f" (rule {escape(step.rule)})" if step.rule else "") + "</p>")
    rows.append(timeline_svg(step))
    if step.checks:
        rows.append("<table><tr><th>check</th><th>result</th><th>detail</th></tr>")
        for check in step.checks:
            detail = {k: v for k, v in check.items() if k not in ("check", "ok")}
            rows.append(f"<tr><td>{escape(str(check['check']))}</td><td>{'ok' if check.get('ok') else 'FAILED'}"
                        f"</td><td><pre>{escape(_json(detail))}</pre></td></tr>")
        rows.append("</table>")
    for exchange in step.exchanges:
        summary = (f"{exchange.get('label')}: {exchange.get('method')} {exchange.get('url')} -> "
                   f"{exchange.get('status')} in {float(exchange.get('duration') or 0) * 1000:.0f} ms")
        rows.append(f"<details><summary>{escape(summary)}</summary><pre>{escape(_json(exchange))}</pre></details>")
    return "\n".join(rows)


def render_html(results: list[ScenarioResult], not_run: dict[str, str], title: str) -> str:
    """The report's HTML (self-contained)."""
    passed = sum(r.verdict == "pass" for r in results)
    failed = sum(r.verdict == "fail" for r in results)
    skipped = sum(r.verdict == "skipped" for r in results)
    body = [f"<h1>{escape(title)}</h1>",
            f"<p>{datetime.now(UTC).isoformat(timespec='seconds')}: {passed} passed, {failed} failed, "
            f"{skipped} skipped, {len(not_run)} not run. Payloads for EVSClient in <code>payloads/</code>, traces in "
            "<code>traces/</code>. Free texts and NIR-like numbers are masked; credentials never recorded.</p>",
            "<table><tr><th>scenario</th><th>verdict</th><th>detail</th></tr>"]
    for result in results:
        step = result.failing
        detail = (f"step '{step.label}': {step.failure}" if step
                  else result.reason if result.verdict == "skipped" and result.reason
                  else f"{len(result.steps)} step(s), {result.seconds:.1f} s")
        body.append(f'<tr><td><a href="#{escape(result.name)}">{escape(result.name)}</a></td>'
                    f"<td>{_verdict(result.verdict)}</td><td>{escape(detail)}</td></tr>")
    for name, reason in not_run.items():
        body.append(f"<tr><td>{escape(name)}</td><td>{_verdict('not run')}</td><td>{escape(reason)}</td></tr>")
    body.append("</table>")
    for result in results:
        body.append(f'<h2 id="{escape(result.name)}">{escape(result.name)}: {escape(result.title)} '
                    f"{_verdict(result.verdict)}</h2>")
        if result.verdict == "skipped":
            # nothing was played: what a vendor must do instead of a work list that was never touched
            body.append(f"<p>not played: {escape(str(result.reason))}</p>")
            continue
        body.append(f"<p>decision {escape(str(result.id_nat))}, establishment {escape(str(result.finess_eg))}</p>")
        body.append(f"<p>work list before: {escape(_status(result.before))}<br>"
                    f"work list after: {escape(_status(result.after))}</p>")
        for title_, task in (("work-list Task before", result.before), ("work-list Task after", result.after)):
            body.append(f"<details><summary>{title_}</summary><pre>{escape(_json(redact_health(task)))}</pre>"
                        "</details>")
        body.extend(_step_html(step) for step in result.steps)
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n")


def write_evidence(results: list[ScenarioResult], not_run: dict[str, str], directory: Path) -> Path:
    """Write the report, the payloads and the traces into ``directory``; return the report's path."""
    payloads, traces = directory / "payloads", directory / "traces"
    for folder in (directory, payloads, traces):
        folder.mkdir(parents=True, exist_ok=True)
    for result in results:
        for index, step in enumerate(result.steps, 1):
            if step.payload is not None and step.payload_kind:
                _write(payloads / f"{result.name}-{index}-{step.payload_kind}.json",
                       _json(redact_health(step.payload)) + "\n")
        _write(traces / f"{result.name}.trace.json", _json(redact_health(asdict(result))) + "\n")
    summary = {"scenarios": [{"name": r.name, "verdict": r.verdict, "seconds": round(r.seconds, 2),
                              "failing_step": r.failing.label if r.failing else None,
                              "failure": r.failing.failure if r.failing else None,
                              "rule": r.failing.rule if r.failing else None,
                              "reason": r.reason} for r in results],
               "not_run": not_run,
               "validators": "submit payloads/*-esms-task.json to EVSClient (esms-task) and "
                             "payloads/*-esms-consent.json (esms-consent)"}
    _write(directory / "results.json", _json(summary) + "\n")
    report = directory / "report.html"
    _write(report, render_html(results, not_run, "vtdui rehearse: ViaTrajectoire referencing scenarios"))
    return report
