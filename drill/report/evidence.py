"""The evidence folder of a run: report.json (canonical), its signature, and the rendered views.

Also the rebuild of that folder from a journal (`drill report rebuild`), and when its report.json
is byte for byte the run's (see `rebuild_evidence`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from drill.errors import UsageError
from drill.evidence.canonical import canonical_bytes
from drill.evidence.inputs import InputRejected
from drill.evidence.journal import file_sha256
from drill.report.build import (
    REPORT_FILE,
    build_report_from_journal,
    fold_journal_file,
    load_report,
    read_report_file,
    report_bytes,
    report_of_fold,
    write_atomically,
    write_report,
)
from drill.report.model import EvidenceFile, Report, Signer
from drill.report.render_html import render_html
from drill.report.render_junit import render_junit
from drill.report.render_md import render_markdown
from drill.report.sign import existing_signatures, sign_report, signer_identity
from drill.report.signoff import SignOff, sign_offs_in
from drill.results import results_json

Renderer = Callable[[Report, Sequence[SignOff]], str]

RESULTS_FILE = "results.json"  # the name drill/run/session.py writes (not imported: it pulls in the runner)

# format -> (renderer, file name in the evidence folder). These are the views `drill verify`
# re-renders and compares; report.pdf (drill/report/pdf.py) is deliberately not one of them.
RENDERERS: dict[str, tuple[Renderer, str]] = {
    "html": (render_html, "report.html"),
    "md": (render_markdown, "report.md"),
    "junit": (render_junit, "report.junit.xml"),
}


def render_views(report: Report, directory: Path, formats: tuple[str, ...] = tuple(RENDERERS)) -> list[Path]:
    """Write report.html / report.md / report.junit.xml next to report.json, with the sign-offs
    present in `directory`; returns the paths."""
    sign_offs = sign_offs_in(directory, report)
    written = []
    for fmt in formats:
        renderer, name = RENDERERS[fmt]
        written.append(write_atomically(directory / name, renderer(report, sign_offs).encode("utf-8")))
    return written


def views_present(directory: Path) -> tuple[str, ...]:
    """The formats whose view file exists in `directory` (in RENDERERS order)."""
    return tuple(fmt for fmt, (_, name) in RENDERERS.items() if (directory / name).is_file())


def rerender_views(report: Report, directory: Path) -> list[Path]:
    """Render again the views already in `directory`, so their sign-off block lists the signatures
    now beside report.json (after `drill report sign` or `countersign`); views absent stay absent."""
    return render_views(report, directory, views_present(directory))


def write_evidence(
    run_dir: Path, *, sign_key: Path | None = None, signer: str = "operator", passphrase: str | None = None
) -> list[Path]:
    """Build report.json from the run's journal, sign it when a key is given, render every view."""
    identity = Signer(*signer_identity(sign_key, signer, passphrase)) if sign_key else None
    extra = [p for p in (run_dir / RESULTS_FILE,) if p.exists()]
    report = build_report_from_journal(run_dir / "journal.jsonl", signer=identity, evidence_files=extra)
    written = [run_dir / "journal.jsonl", *extra, write_report(report, run_dir)]
    if sign_key is not None:
        written.append(sign_report(run_dir, sign_key, signer, passphrase))
    return written + render_views(report, run_dir)


# ---------------------------------------------------------------- rebuilding from a journal


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """What `rebuild_evidence` wrote, and how its report.json compares with the run's."""

    report: Report
    written: tuple[Path, ...]  # results.json when it was written, report.json, then the views
    reference: Path | None  # the report.json the preparer and evidence names came from
    identical: bool | None  # the rebuilt bytes equal the reference's; None: no reference
    differences: tuple[str, ...]  # why the bytes differ from the run's report, in words


@dataclass(frozen=True, slots=True)
class _Reference:
    path: Path
    report: Report
    data: bytes
    authoritative: bool  # the run's own report (or --signer-of), not an earlier rebuild elsewhere


def rebuild_evidence(
    journal: Path,
    out_dir: Path | None = None,
    *,
    signer_of: Path | None = None,
    render: bool = True,
    allow_torn_tail: bool = False,
    force: bool = False,
) -> Rebuilt:
    """Rebuild report.json (and results.json, and the views) from a journal.

    The journal does not name who signs the report, and the report lists the SHA-256 of
    results.json, so the rebuilt report.json is byte for byte the run's when:

    - the preparer is known: from `signer_of` (a report.json or its folder), else the report.json
      beside the journal (the run's own), else the one already in `out_dir`; any other report
      is refused (another run's) or ignored;
    - the evidence files that report lists are those the run had: each is read from `out_dir`,
      else from the journal's folder, except results.json, which is the journal's fold and is
      written into `out_dir` when it is not there (never overwritten: it is evidence). With no
      report to take the list from, the list is results.json, as `drill run` writes it;
    - this drill folds and builds as the drill that made the report did (same version).

    Otherwise the report is still written, and `differences` says which field differs and why.
    A signed report.json in `out_dir` that differs from the rebuilt one is replaced only with
    `force` (its signatures would no longer verify).
    """
    if journal.is_dir():
        journal = journal / "journal.jsonl"
    target_dir = out_dir or journal.parent
    existing = target_dir / REPORT_FILE
    folded, summary = fold_journal_file(journal, allow_torn_tail=allow_torn_tail)
    run_id = folded.results.run_id
    reference, ignored = _reference(journal, target_dir, signer_of, run_id)
    # The bytes `drill run` writes (drill/run/session.py fold_run, then results_json).
    results_text = results_json(replace(folded.results, journal_head=summary.head)).encode("utf-8")
    names = [e.file for e in reference.report.evidence] if reference else [RESULTS_FILE]
    evidence, write_results = _evidence(names, target_dir, journal.parent, results_text, reference)
    report = report_of_fold(
        folded,
        summary,
        signer=reference.report.prepared_by if reference else None,
        evidence=evidence,
        journal_file=journal.name,
    )
    new_bytes = report_bytes(report)
    differences = list(ignored)
    if reference is None or (reference.report.prepared_by is None and not reference.authoritative):
        differences.append(
            "prepared_by unknown: the journal does not name the signer; pass --signer-of "
            f"runs/{run_id}/report.json (the run's report) to rebuild it byte for byte"
        )
    if reference is not None and reference.data != new_bytes:
        differences.append(_why_different(reference, report, new_bytes, target_dir, write_results))
    stored = _stored_bytes(existing)
    if existing.is_file() and stored != new_bytes:
        signatures = existing_signatures(target_dir)
        if signatures and not force:
            why = _why_different_from(existing, stored, report, new_bytes, target_dir, write_results)
            raise UsageError(
                f"{existing} is signed ({len(signatures)} signature(s)) and differs from the rebuilt "
                f"report ({why})",
                hint="write elsewhere with -o DIR, or pass --force (its signatures will then fail to verify)",
            )
    written: list[Path] = []
    target_dir.mkdir(parents=True, exist_ok=True)
    if write_results:
        written.append(write_atomically(target_dir / RESULTS_FILE, results_text))
    written.append(write_report(report, target_dir))
    if render:
        written += render_views(report, target_dir)
    return Rebuilt(
        report,
        tuple(written),
        reference.path if reference else None,
        None if reference is None else reference.data == new_bytes,
        tuple(differences),
    )


def _reference(
    journal: Path, target_dir: Path, signer_of: Path | None, run_id: str
) -> tuple[_Reference | None, list[str]]:
    """The report.json whose preparer and evidence list the rebuild takes, and notes on those
    passed over (a report of another run)."""
    if signer_of is not None:
        path = signer_of / REPORT_FILE if signer_of.is_dir() else signer_of
        found = _read_reference(path, authoritative=True, quiet=False)
        assert found is not None  # quiet=False raises instead
        if found.report.run_id != run_id:
            raise UsageError(
                f"--signer-of {path} is the report of run {found.report.run_id}, "
                f"not of {journal.name}'s run {run_id}"
            )
        return found, []
    notes: list[str] = []
    own, earlier = journal.parent / REPORT_FILE, target_dir / REPORT_FILE
    candidates = [(own, True)]
    if earlier.resolve() != own.resolve():
        candidates.append((earlier, False))
    for path, authoritative in candidates:
        found = _read_reference(path, authoritative=authoritative, quiet=True)
        if found is None:
            continue
        if found.report.run_id == run_id:
            return found, notes
        notes.append(f"{path} is the report of run {found.report.run_id}: its preparer is not used")
    return None, notes


def _read_reference(path: Path, *, authoritative: bool, quiet: bool) -> _Reference | None:
    """A report.json as hostile input: refused (InputRejected) when it is no regular file or too
    big or deep; when it is no valid report, None if quiet (it will be replaced), else UsageError."""
    if quiet and not path.exists() and not path.is_symlink():
        return None
    try:
        report = load_report(path)
        data = read_report_file(path)
    except InputRejected:
        raise
    except UsageError:
        if quiet:
            return None
        raise
    return _Reference(path, report, data, authoritative)


def _evidence(
    names: Sequence[str],
    target_dir: Path,
    journal_dir: Path,
    results_text: bytes,
    reference: _Reference | None,
) -> tuple[list[EvidenceFile], bool]:
    """The evidence entries of the rebuilt report, and whether results.json must be written."""
    entries, write_results = [], False
    for name in names:
        here, there = target_dir / name, journal_dir / name
        if here.is_file():
            entries.append(EvidenceFile(name, file_sha256(here)))
        elif name == RESULTS_FILE:
            entries.append(EvidenceFile(name, hashlib.sha256(results_text).hexdigest()))
            write_results = True
        elif there.is_file():
            entries.append(EvidenceFile(name, file_sha256(there)))
        else:
            listed = f" (listed in {reference.path})" if reference else ""
            where = (
                f"not in {target_dir}" if here == there else f"neither in {target_dir} nor in {journal_dir}"
            )
            raise UsageError(f"evidence file {name}{listed} is missing: {where}")
    return entries, write_results


def _why_different(
    reference: _Reference, report: Report, new_bytes: bytes, target_dir: Path, wrote_results: bool
) -> str:
    why = _why_different_from(reference.path, reference.data, report, new_bytes, target_dir, wrote_results)
    return f"report.json differs from {reference.path}: {why}"


def _why_different_from(
    path: Path, stored: bytes | None, report: Report, new_bytes: bytes, target_dir: Path, wrote_results: bool
) -> str:
    """Which top-level fields differ between a stored report and the rebuilt one, and why."""
    try:
        theirs = json.loads(stored) if stored is not None else None
    except ValueError:
        theirs = None
    if not isinstance(theirs, dict):
        return f"{path} is not a drill report"
    ours = json.loads(new_bytes)
    keys = sorted(
        k for k in {*ours, *theirs} if canonical_bytes(ours.get(k)) != canonical_bytes(theirs.get(k))
    )
    reasons = []
    for key in keys:
        mine, other = ours.get(key), theirs.get(key)
        if key == "tool":
            version = other.get("version") if isinstance(other, dict) else None
            reasons.append(f"tool: it was built by drill {version}, this is drill {report.tool.version}")
        elif key == "prepared_by":
            reasons.append(f"prepared_by: {_who(other)} there, {_who(mine)} here")
        elif key == "evidence":
            reasons.append(_evidence_difference(other, mine, target_dir, wrote_results))
        elif key in ("journal", "report_id", "generated_utc"):
            reasons.append(f"{key}: the journal is not the one it was built from")
        else:
            reasons.append(f"{key}: the journal folds to another value (the fold rules differ)")
    return "; ".join(dict.fromkeys(reasons)) or "the same fields, other bytes (not canonical JSON)"


def _who(signer: object) -> str:
    if isinstance(signer, dict):
        return f"{signer.get('principal')} ({signer.get('fingerprint')})"
    return "nobody"


def _evidence_difference(theirs: object, ours: object, target_dir: Path, wrote_results: bool) -> str:
    def digests(value: object) -> dict[str, str]:
        items = value if isinstance(value, list) else []
        return {str(e.get("file")): str(e.get("sha256")) for e in items if isinstance(e, dict)}

    old, new = digests(theirs), digests(ours)
    if set(old) != set(new):
        return f"evidence: it lists {sorted(old) or 'no file'}, the rebuild {sorted(new) or 'no file'}"
    changed = sorted(name for name in old if old[name] != new[name])
    parts = []
    for name in changed:
        if name == RESULTS_FILE and wrote_results:
            parts.append(
                f"evidence {name}: the journal's fold written to {target_dir / name} is not the "
                f"{name} the report covers (written by another drill version, or edited)"
            )
        else:
            parts.append(f"evidence {name}: the file is not the one the report covers (changed since)")
    return "; ".join(parts)


def _stored_bytes(path: Path) -> bytes | None:
    """The existing report.json's bytes (None when there is none or it cannot be read)."""
    if not path.exists() and not path.is_symlink():
        return None
    try:
        return read_report_file(path)
    except InputRejected:
        raise
    except UsageError:
        return None
