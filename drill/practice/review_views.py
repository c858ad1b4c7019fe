"""Views of an after-action review: one self-contained HTML page and one GitHub-flavoured Markdown
document, written beside review.yaml (review.html, review.md).

Both show the same things, in the same order, from the same view model (`_view`): the header
(drill, quarter, run, report, and the SHA-256 of the report the review is bound to, checked
against the report given), the participants, the P/S/M/U rating of each objective beside what the
drill measured, the corrective-action table (id, finding, title, severity, owner, due, status,
ticket, closure), each action's status history, the report's findings no action answers, and the
lessons learned.

Every text in a review was typed by a person (or pasted from a tracker) and is rendered as data:
HTML-escaped in the page (jinja2 autoescape, a Content-Security-Policy that allows no script),
Markdown-escaped in the document (pipes and the characters that would make a link, emphasis or
raw HTML), and in both, control and format characters (bidi overrides and isolates, zero-width
characters, line separators, escape sequences) are shown as visible `\\u202e`-style escapes, so
a title cannot reorder or hide what is next to it. Only http(s) ticket URLs become links.

Deterministic: the same review and report give the same bytes (no clock is read).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from urllib.parse import quote, urlsplit

import jinja2

from drill.practice.review_model import RATINGS, Action, Retest, Review, RiskAcceptance
from drill.report.build import report_bytes
from drill.report.model import Finding, Report
from drill.units import human_ms

REVIEW_HTML = "review.html"
REVIEW_MD = "review.md"

_STATUS_TEXT = {
    "open": "open",
    "in-progress": "in progress",
    "done": "done",
    "risk-accepted": "risk accepted",
}
_OBJECTIVE_TEXT = {"rto": "RTO", "rpo": "RPO"}
# ASCII punctuation that can start Markdown syntax inside a line (CommonMark lets any of it be
# backslash-escaped): emphasis, code, links, images, raw HTML, entities, tables, strikethrough.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&!])")
_URL_UNSAFE = re.compile(r"[^A-Za-z0-9\-._~:/?#@!$&'*+,;=%]")  # what stays as it is in a link target


def visible(text: str) -> str:
    """text with every control and format character (bidi overrides, zero-width characters, line
    and paragraph separators, ESC) shown as a Python escape, e.g. `\\u202e`: it cannot reorder,
    hide or redraw the text around it."""
    return "".join(
        ch.encode("unicode_escape").decode("ascii")
        if unicodedata.category(ch)[0] == "C" or unicodedata.category(ch) in ("Zl", "Zp")
        else ch
        for ch in text
    )


def one_line(text: str) -> str:
    """text on one line (runs of white space, newlines included, as one space), made visible."""
    return visible(" ".join(text.split()))


def fmt_utc(text: str) -> str:
    """A UTC timestamp shortened for tables: 2026-11-20 09:00:35Z ("—" when there is none)."""
    if not text:
        return "—"
    return one_line(text.replace("T", " ").replace("+00:00", "Z"))


# ---------------------------------------------------------------- the view model (both renderers)


@dataclass(frozen=True, slots=True)
class _Ticket:
    key: str  # what is shown ("" when there is no ticket)
    url: str  # an http(s) URL to link to ("" when there is none: never a javascript: link)


@dataclass(frozen=True, slots=True)
class _Closure:
    kind: str  # "retest" | "risk-acceptance" | ""
    text: str  # one line, for Markdown and the HTML title
    run_id: str = ""
    report_sha256: str = ""
    verified: str = ""
    principal: str = ""
    reason: str = ""
    file: str = ""
    file_sha256: str = ""


@dataclass(frozen=True, slots=True)
class _Change:
    utc: str
    status: str
    by: str
    note: str


@dataclass(frozen=True, slots=True)
class _Action:
    id: str
    finding: str
    finding_known: bool  # the finding is one of the report's (or the action has none)
    finding_title: str
    title: str
    severity: str  # a known severity's name, for the CSS class; else "other"
    severity_text: str
    owner: str
    due: str
    status: str  # the status value (open, in-progress, ...), for the CSS class
    status_text: str
    ticket: _Ticket
    closure: _Closure
    asset: str
    objective: str
    root_cause: str
    history: tuple[_Change, ...]


@dataclass(frozen=True, slots=True)
class _Rating:
    asset: str
    objective: str
    rating: str  # P | S | M | U | ""
    meaning: str
    measured: str  # what the drill measured for it, from the report
    note: str


@dataclass(frozen=True, slots=True)
class _View:
    drill: str
    quarter: str
    run_id: str
    report_id: str
    report_sha256: str
    report_matches: bool  # the report given is the one the review is bound to
    report_actual_sha256: str
    run_matches: bool
    report_run_id: str
    verdict: str
    verdict_reason: str
    prepared: str
    time_zone: str
    participants: tuple[tuple[str, str], ...]
    ratings: tuple[_Rating, ...]
    actions: tuple[_Action, ...]
    counts: tuple[tuple[str, int], ...]  # (status text, number of actions), every status
    unanswered: tuple[tuple[str, str, str], ...]  # report findings no action answers: (id, severity, title)
    lessons: tuple[str, ...]
    legend: tuple[tuple[str, str], ...]


_SEVERITIES = ("critical", "high", "medium", "low", "info")


def _view(review: Review, report: Report) -> _View:
    actual = hashlib.sha256(report_bytes(report)).hexdigest()
    findings = {f.id: f for f in report.findings}
    answered = {a.finding for a in review.actions}
    counts = {status: 0 for status in _STATUS_TEXT}
    for action in review.actions:
        counts[action.status] = counts.get(action.status, 0) + 1
    return _View(
        drill=one_line(review.playbook),
        quarter=one_line(review.quarter),
        run_id=one_line(review.run_id),
        report_id=one_line(review.report_id),
        report_sha256=one_line(review.report_sha256),
        report_matches=actual == review.report_sha256,
        report_actual_sha256=actual,
        run_matches=report.run_id == review.run_id,
        report_run_id=one_line(report.run_id),
        verdict=str(report.verdict),
        verdict_reason=one_line(report.run.verdict_reason or report.run.reason),
        prepared=fmt_utc(review.prepared_utc),
        time_zone=one_line(review.time_zone),
        participants=tuple((one_line(p.name), one_line(p.role)) for p in review.participants),
        ratings=tuple(
            _Rating(
                asset=one_line(o.asset),
                objective=_OBJECTIVE_TEXT.get(o.objective, one_line(o.objective)),
                rating=o.rating,
                meaning=RATINGS.get(o.rating, "not rated yet"),
                measured=_measured(report, o.asset, o.objective),
                note=one_line(o.note),
            )
            for o in review.objectives
        ),
        actions=tuple(_action(a, findings) for a in review.actions),
        counts=tuple((_STATUS_TEXT.get(s, one_line(s)), n) for s, n in counts.items()),
        unanswered=tuple(
            (one_line(f.id), str(f.severity), one_line(f.title))
            for f in report.findings
            if f.id not in answered
        ),
        lessons=tuple(one_line(lesson) for lesson in review.lessons),
        legend=tuple(RATINGS.items()),
    )


def _measured(report: Report, asset_id: str, objective: str) -> str:
    """What the drill measured for an objective of an asset, as the report states it."""
    asset = next((a for a in report.assets if a.id == asset_id), None)
    if asset is None:
        return "asset not in the report"
    result = next((o for o in asset.objectives if o.objective == objective), None)
    if result is None:
        return "objective not in the report"
    state = result.state.replace("-", " ")
    if result.waived and result.achieved_ms is None:
        state += " (waived)"
    if result.achieved_ms is None:
        return f"{state} (target {human_ms(result.target_ms)})"
    return f"{state}: {human_ms(result.achieved_ms)} (target {human_ms(result.target_ms)})"


def _action(a: Action, findings: Mapping[str, Finding]) -> _Action:
    finding = findings.get(a.finding)
    return _Action(
        id=one_line(a.id),
        finding=one_line(a.finding),
        finding_known=not a.finding or finding is not None,
        finding_title=one_line(finding.title) if finding else "",
        title=one_line(a.title),
        severity=a.severity if a.severity in _SEVERITIES else "other",
        severity_text=one_line(a.severity),
        owner=one_line(a.owner),
        due=one_line(a.due),
        status=a.status if a.status in _STATUS_TEXT else "other",
        status_text=_STATUS_TEXT.get(a.status, one_line(a.status)),
        ticket=ticket_of(a.ticket),
        closure=_closure(a.closure),
        asset=one_line(a.asset),
        objective=_OBJECTIVE_TEXT.get(a.objective, one_line(a.objective)),
        root_cause=one_line(a.root_cause),
        history=tuple(
            _Change(
                utc=fmt_utc(c.utc),
                status=_STATUS_TEXT.get(c.status, one_line(c.status)),
                by=one_line(c.by),
                note=one_line(c.note),
            )
            for c in a.history
        ),
    )


def ticket_of(text: str) -> _Ticket:
    """The `ticket` field as shown: "KEY URL" (what drill review export writes), a bare key, or a
    bare URL. Only an http(s) URL with a host is linked."""
    parts = text.split()
    if not parts:
        return _Ticket("", "")
    url = next((p for p in parts if _linkable(p)), "")
    shown = " ".join(p for p in parts if p != url) or url
    return _Ticket(one_line(shown), url)


def _linkable(text: str) -> bool:
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _closure(closure: Retest | RiskAcceptance | None) -> _Closure:
    if isinstance(closure, Retest):
        run, sha, when = (
            one_line(closure.run_id),
            one_line(closure.report_sha256),
            fmt_utc(closure.verified_utc),
        )
        return _Closure(
            kind="retest",
            text=f"retest: run {run}, report SHA-256 {sha}, verified {when}",
            run_id=run,
            report_sha256=sha,
            verified=when,
        )
    if isinstance(closure, RiskAcceptance):
        who, why = one_line(closure.principal), one_line(closure.reason)
        file, sha = one_line(closure.file), one_line(closure.sha256)
        return _Closure(
            kind="risk-acceptance",
            text=f"risk accepted by {who}: {why}; {file} SHA-256 {sha}",
            principal=who,
            reason=why,
            file=file,
            file_sha256=sha,
        )
    return _Closure(kind="", text="")


# ---------------------------------------------------------------- HTML


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("drill.practice", "templates"),
        autoescape=True,  # every value in a review is data, never markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_review_html(review: Review, report: Report) -> str:
    """The review as one standalone HTML page (inline CSS, no script, no network; deterministic)."""
    return _environment().get_template("review.html.j2").render(v=_view(review, report))


# ---------------------------------------------------------------- Markdown


def _md(text: str) -> str:
    """Text (already one line and visible) for Markdown: syntax characters backslash-escaped."""
    return _MD_SPECIAL.sub(r"\\\1", text) or "—"


def _md_code(text: str, *, cell: bool = True) -> str:
    """An inline code span: its fence is longer than any backtick run inside, so nothing in it can
    end it early; in a table cell its pipes are escaped (GitHub splits table cells on a pipe even
    inside a code span, and unescapes `\\|` there)."""
    if not text:
        return "—"
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    code = f"{fence}{pad}{text}{pad}{fence}"
    return code.replace("|", "\\|") if cell else code


def _md_ticket(ticket: _Ticket) -> str:
    if not ticket.key:
        return "—"
    if not ticket.url:
        return _md(ticket.key)
    target = _URL_UNSAFE.sub(lambda m: quote(m.group(), safe=""), ticket.url)
    target = target.replace("(", "%28").replace(")", "%29")
    return f"[{_md(ticket.key)}]({target})"


def _md_table(head: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    """A GitHub table; the cells are already escaped (every pipe in them is `\\|`)."""
    return [
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def render_review_markdown(review: Review, report: Report) -> str:
    """The review as one GitHub-flavoured Markdown document (deterministic)."""
    v = _view(review, report)
    out: list[str] = []
    title = f"# After-action review: {_md(v.drill)}" + (f" ({_md(v.quarter)})" if v.quarter else "")
    out += [title, ""]
    out.append(f"- Run: {_md_code(v.run_id, cell=False)} · report {_md_code(v.report_id, cell=False)}")
    out.append(f"- Bound to report.json SHA-256 {_md_code(v.report_sha256, cell=False)}")
    if not v.report_matches:
        out.append(
            f"- **Warning: the report beside this review is another one** (SHA-256 "
            f"{_md_code(v.report_actual_sha256, cell=False)}, run {_md_code(v.report_run_id, cell=False)}): "
            "the review is not about it"
        )
    elif not v.run_matches:
        out.append(
            f"- **Warning: the report is of run {_md_code(v.report_run_id, cell=False)}**, not this review's"
        )
    verdict = v.verdict.upper().replace("-", " ")
    out.append(f"- Drill verdict: **{verdict}**" + (f": {_md(v.verdict_reason)}" if v.verdict_reason else ""))
    out.append(f"- Prepared {_md(v.prepared)}; due dates are days in {_md(v.time_zone)}")
    out.append("")

    out += ["## Participants", ""]
    if v.participants:
        out += _md_table(("Name", "Role"), [(_md(name), _md(role)) for name, role in v.participants])
    else:
        out.append("None recorded.")
    out.append("")

    out += ["## Objective ratings", ""]
    if v.ratings:
        rows = [
            (
                _md(r.asset),
                r.objective,
                f"**{r.rating}**" if r.rating else "—",
                _md(r.meaning),
                _md(r.measured),
                _md(r.note),
            )
            for r in v.ratings
        ]
        out += _md_table(("Asset", "Objective", "Rating", "Meaning", "Drill measured", "Note"), rows)
    else:
        out.append("No objective rated.")
    out.append("")
    out.append("Ratings (HSEEP): " + "; ".join(f"**{k}** {meaning}" for k, meaning in v.legend) + ".")
    out.append("")

    out += ["## Corrective actions", ""]
    total = len(v.actions)
    out.append(
        f"{total} action{'' if total == 1 else 's'}: "
        + ", ".join(f"{n} {status}" for status, n in v.counts)
        + "."
    )
    out.append("")
    if v.actions:
        head = ("ID", "Finding", "Title", "Severity", "Owner", "Due", "Status", "Ticket", "Closure")
        out += _md_table(head, [_md_action_row(a) for a in v.actions])
        out.append("")
    if v.unanswered:
        out += ["Findings of the report no action answers:", ""]
        out += [f"- {_md(fid)} ({sev}): {_md(title)}" for fid, sev, title in v.unanswered]
        out.append("")

    out += ["## Status history", ""]
    if not v.actions:
        out += ["No actions.", ""]
    for a in v.actions:
        out += [f"### {_md(a.id)}: {_md(a.title)}", ""]
        facts = [f"status {a.status_text}"]
        if a.asset:
            facts.append(f"asset {_md(a.asset)}" + (f", objective {_md(a.objective)}" if a.objective else ""))
        if a.root_cause:
            facts.append(f"root cause: {_md(a.root_cause)}")
        out += ["- " + "; ".join(facts), ""]
        if a.history:
            changes = [(_md(c.utc), _md(c.status), _md(c.by), _md(c.note)) for c in a.history]
            out += _md_table(("When (UTC)", "Status", "By", "Note"), changes)
        else:
            out.append("No status change recorded.")
        out.append("")

    out += ["## Lessons learned", ""]
    if v.lessons:
        out += [f"{i}. {_md(lesson)}" for i, lesson in enumerate(v.lessons, 1)]
    else:
        out.append("None recorded.")
    return "\n".join(out).rstrip() + "\n"


def _md_action_row(a: _Action) -> tuple[str, ...]:
    finding = _md(a.finding) + ("" if a.finding_known else " (not in the report)")
    if a.closure.kind == "retest":
        c = a.closure
        closure = (
            f"retest: run {_md_code(c.run_id)}, report SHA-256 {_md_code(c.report_sha256)}, "
            f"verified {_md(c.verified)}"
        )
    elif a.closure.kind == "risk-acceptance":
        c = a.closure
        closure = (
            f"risk accepted by {_md(c.principal)}: {_md(c.reason)}; "
            f"{_md_code(c.file)} SHA-256 {_md_code(c.file_sha256)}"
        )
    else:
        closure = "—"
    return (
        _md(a.id),
        finding,
        _md(a.title),
        _md(a.severity_text),
        _md(a.owner),
        _md(a.due),
        _md(a.status_text),
        _md_ticket(a.ticket),
        closure,
    )
