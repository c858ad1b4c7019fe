"""`drill sla report --trust-seals`: a watch folder's signed seals carry each segment's digest, and a
report taken from them is the report that reading every line gives.

A real watch process probes a real HTTP server on 127.0.0.1 that the test takes down for a while
(pages go to a real webhook receiver), rotating every second and signing its seals; the report is
then made both ways from the same folder and compared figure by figure. Tampering is done on
copies of the folder. The page-answered-after-a-rotation rule is checked on digests built here.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from drill.cli import cli
from drill.clock import utc_ms
from drill.evidence.canonical import canonical_bytes
from drill.evidence.journal import read_events
from drill.report.sign import generate_keypair, public_key_line
from drill.sla.calendar import period_of
from drill.sla.digest import DigestBuilder, PageRecord, SegmentDigest, Trip
from drill.sla.load import load_sla
from drill.sla.model import DelayKpi, ResponseKpi, Sla, Timeline
from drill.sla.report import SlaReport, build_report
from drill.sla.segments import (
    NAMESPACE,
    Seal,
    SealReader,
    read_seal,
    scan_segment,
    seal_of,
    seal_path,
    segment_name,
    verify_watch,
    write_seal,
)
from drill.sla.sources import JournalDigest
from tests.conftest import SwitchableServer, serving
from tests.sla.test_watch import stop_watch, wait_for, watching
from tests.sla.test_watch_alerts import (
    BURN,
    DELAY,
    PagerReceiver,
    observed_for_ms,
    receiving,
    set_status,
    write_files,
)

RESPONSE = """\
    response:
      - {name: p1, severity: P1, chain: oncall, within: 15m}
"""


@pytest.fixture(scope="module")
def server() -> Iterator[SwitchableServer]:
    yield from serving(SwitchableServer())


@dataclass(frozen=True)
class Sealed:
    root: Path
    folder: Path
    sla: Path
    allowed: Path
    segments: int


@pytest.fixture(scope="module")
def sealed(
    tmp_path_factory: pytest.TempPathFactory, server: SwitchableServer, pager_module: PagerReceiver
) -> Sealed:
    """A watch rotating every second with signed seals, a burn alert and a delay KPI; the server
    fails for a while (a page), then answers again; stopped by SIGTERM."""
    root = tmp_path_factory.mktemp("sealed")
    extra = BURN.rstrip("\n") + "\n" + DELAY.rstrip("\n") + "\n" + RESPONSE
    playbook, sla = write_files(root, server, pager_module, extra)
    public = generate_keypair(root / "key")
    allowed = root / "allowed_signers"
    allowed.write_text(f'operator namespaces="{NAMESPACE}" {public_key_line(public)}\n', encoding="utf-8")
    folder = root / "watch"
    args = ("--out", str(folder), "--sla", str(sla), "--rotate", "1s", "--sign-key", str(root / "key"))
    with watching(root, str(playbook), *args) as process:
        wait_for(lambda: process.poll() is None and observed_for_ms(folder) >= 7_000, 20, "7 s of probing")
        set_status(server, 503)
        wait_for(lambda: pager_module.count() >= 1, 10, "a page")
        set_status(server, 200)
        start = observed_for_ms(folder)
        wait_for(lambda: observed_for_ms(folder) >= start + 1_500, 10, "1.5 s of recovery")
        stop_watch(process, root)
    return Sealed(root, folder, sla, allowed, len(list(folder.glob("segment-*.jsonl"))))


@pytest.fixture(scope="module")
def pager_module() -> Iterator[PagerReceiver]:
    yield from receiving()


def report(sealed: Sealed, folder: Path, *extra: str) -> tuple[Result, Any]:
    month = datetime.now(UTC).strftime("%Y-%m")
    args = ["sla", "report", str(sealed.sla), "--period", month, "--journal", str(folder), "--format", "json"]
    result = CliRunner().invoke(cli, [*args, *extra])
    data = json.loads(result.output) if result.output.startswith("{") else {}
    return result, data


def without_notes(data: Any) -> Any:
    """The report but the source's note and the time it was generated (also in a note): what the
    two ways must agree on."""
    out = dict(data)
    generated = str(out.pop("generated_utc"))
    out["notes"] = [str(n).replace(generated, "(generated)") for n in data["notes"]]
    out["sources"] = [{k: v for k, v in s.items() if k != "note"} for s in data["sources"]]
    return out


def note_of(data: Any) -> str:
    (source,) = data["sources"]
    return str(source["note"])


def test_a_report_from_trusted_seals_is_the_report_every_line_gives(sealed: Sealed) -> None:
    assert sealed.segments >= 8
    full, full_data = report(sealed, sealed.folder)
    fast, fast_data = report(sealed, sealed.folder, "--trust-seals", str(sealed.allowed))
    assert full.exit_code in (0, 1), full.output
    assert fast.exit_code == full.exit_code, fast.output
    assert without_notes(fast_data) == without_notes(full_data)
    assert note_of(full_data).startswith(
        f"drill journals: {sealed.segments} of {sealed.segments} verified in full"
    )
    assert note_of(fast_data).startswith(f"drill journals: 0 of {sealed.segments} verified in full")
    assert "signed by a key" in note_of(fast_data) and "(operator)" in note_of(fast_data)
    # what is compared is not empty: an outage, its page, and the delay KPI's round trips
    assert all(s["downtime_raw_ms"] > 0 for s in full_data["services"]), full_data["services"]
    kpis = {k["name"]: k for k in full_data["kpis"]}
    assert kpis["p1"]["count"] >= 1, kpis
    assert kpis["round-trip"]["count"] >= 50, kpis
    incidents = [i for s in full_data["services"] for i in s["incidents"]]
    assert incidents, full_data["services"]


def test_every_seal_holds_the_digest_of_its_lines(sealed: Sealed) -> None:
    for number in range(1, sealed.segments + 1):
        path = sealed.folder / segment_name(number)
        seal = read_seal(path)
        assert seal is not None and seal.digest is not None and seal.format == 2
        builder = DigestBuilder(tracked=seal.digest.tracked)
        for event in read_events(path):
            builder.take(event)
        assert builder.finish() == seal.digest, path
        assert seal.digest.tracked == ("web/health",)  # the delay KPI's probe
    assert verify_watch(sealed.folder).ok


def copy_of(sealed: Sealed, tmp_path: Path) -> Path:
    folder = tmp_path / "watch"
    shutil.copytree(sealed.folder, folder)
    return folder


def test_a_segment_changed_after_sealing_is_refused(sealed: Sealed, tmp_path: Path) -> None:
    folder = copy_of(sealed, tmp_path)
    path = folder / segment_name(3)
    data = bytearray(path.read_bytes())
    data[-10] ^= 1  # inside the last line: the file no longer matches its seal's SHA-256
    path.write_bytes(bytes(data))
    result, _ = report(sealed, folder, "--trust-seals", str(sealed.allowed))
    assert result.exit_code == 2, result.output
    assert f"journal {path} refused: it does not match its signed seal (sha256 differs)" in result.output


def copied_seal(sealed: Sealed, tmp_path: Path, number: int) -> tuple[Path, Path, Seal]:
    """A copy of the watch folder, its segment `number` and that segment's seal."""
    folder = copy_of(sealed, tmp_path)
    path = folder / segment_name(number)
    seal = read_seal(path)
    assert seal is not None
    return folder, path, seal


def rewrite_digest(path: Path, seal: Seal, digest: SegmentDigest) -> None:
    """The seal with another digest, stored canonical (its signature is left as it was)."""
    seal_path(path).write_bytes(replace(seal, digest=digest).to_bytes())


def test_an_edited_digest_breaks_its_signature_so_that_segment_is_read(
    sealed: Sealed, tmp_path: Path
) -> None:
    folder, path, seal = copied_seal(sealed, tmp_path, 2)
    assert seal.digest is not None
    probe = seal.digest.probes["web/health"]
    forged = replace(probe, pieces=(), last=None)  # as if nothing was observed in it
    rewrite_digest(path, seal, replace(seal.digest, probes={"web/health": forged}))
    _, full_data = report(sealed, folder)  # the copy: every span names its files
    result, data = report(sealed, folder, "--trust-seals", str(sealed.allowed))
    assert result.exit_code in (0, 1), result.output
    assert note_of(data).startswith(f"drill journals: 1 of {sealed.segments} verified in full")
    assert without_notes(data)["services"] == without_notes(full_data)["services"]
    problems = [str(p) for p in verify_watch(folder).problems]
    assert any("digest differ" in p for p in problems), problems
    assert any("altered after signing" in p for p in problems), problems


def test_seals_signed_by_a_key_not_trusted_are_not_used(sealed: Sealed, tmp_path: Path) -> None:
    other = generate_keypair(tmp_path / "other")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f'operator namespaces="{NAMESPACE}" {public_key_line(other)}\n', encoding="utf-8")
    result, data = report(sealed, sealed.folder, "--trust-seals", str(allowed))
    assert result.exit_code in (0, 1), result.output
    assert note_of(data).startswith(
        f"drill journals: {sealed.segments} of {sealed.segments} verified in full"
    )
    assert "signed by a key" not in note_of(data)


def test_a_seal_of_format_1_is_still_read_and_its_segment_read_in_full(
    sealed: Sealed, tmp_path: Path
) -> None:
    _, path, seal = copied_seal(sealed, tmp_path, 1)
    old = replace(seal, digest=None, format=1)
    raw = json.loads(old.to_bytes())
    assert raw["format"] == 1 and "digest" not in raw
    seal_path(path).write_bytes(canonical_bytes(raw))
    again = read_seal(path)
    assert again is not None and (again.format, again.digest) == (1, None)
    assert SealReader(()).digest(path, ()) is None


def test_a_malformed_digest_makes_the_seal_unreadable() -> None:
    data = json.loads(Seal("f", 1, 0, "h", "s", "", "", "at stop", "", "", "").to_bytes())
    data["digest"] = {"first_ms": "soon"}
    with pytest.raises(ValueError, match="malformed digest"):
        Seal.from_bytes(canonical_bytes(data))


def two_segments_report(sla: Sla, first: SegmentDigest, second: SegmentDigest, at_ms: int) -> SlaReport:
    """The report of the period holding at_ms from two segments' digests (KPIs only: no spans)."""
    journals = [
        JournalDigest(Path("segment-000001.jsonl"), first),
        JournalDigest(Path("segment-000002.jsonl"), second),
    ]
    return build_report(
        sla,
        [Timeline(s.name, ()) for s in sla.services],
        [period_of(sla.window, at_ms)],
        (),
        generated_utc="2026-12-01T00:00:00.000+00:00",
        journals=journals,
    )


def test_a_page_answered_after_a_rotation_is_answered() -> None:
    """A page sent in one segment and acknowledged in the next (same process: a rotation) is met;
    the same two segments after a restart are two processes, and the page was never answered."""
    sla = load_sla(Path(__file__).resolve().parents[2] / "examples" / "sla-lab.yaml")
    sla = replace(sla, response=(ResponseKpi("p1", "P1", "lab-oncall", 900_000),), delays=())
    t0 = 1_796_000_000_000  # 2026-11-29
    page = PageRecord(t0 + 1_000, "page-1", "lab-oncall", ("lab-oncall",), "12345")
    first = SegmentDigest(t0, t0 + 2_000, "", (), {}, pages=(page,))

    def second(continues: str) -> SegmentDigest:
        return SegmentDigest(t0 + 2_000, t0 + 4_000, continues, (), {}, acks={"page-1": 60_000})

    def p1(after: SegmentDigest) -> tuple[str, int | None]:
        built = two_segments_report(sla, first, after, t0)
        (kpi,) = [k for k in built.kpis if k.name == "p1"]
        return kpi.verdict, kpi.worst_ms

    assert p1(second("segment-000001.jsonl")) == ("met", 60_000)
    assert p1(second("")) == ("missed", None)


def test_a_run_of_failed_round_trips_goes_on_across_a_rotation() -> None:
    """The delay of a failed round trip counts from the first failure of its run, and a rotation
    does not end the run (a restart does: the process that saw it begin is gone)."""
    kpi = DelayKpi("rt", "web/health", 300, ((1_000, "oncall"), (2_500, "oncall")))
    sla = replace(
        load_sla(Path(__file__).resolve().parents[2] / "examples" / "sla-lab.yaml"),
        delays=(kpi,),
        response=(),
    )
    t0 = 1_796_000_000_000
    first = SegmentDigest(
        t0, t0 + 2_000, "", (), {}, trips={"web/health": (Trip(t0, False, 500), Trip(t0 + 1_000, False, 500))}
    )

    def level(continues: str) -> int | None:
        after = SegmentDigest(
            t0 + 2_000, t0 + 3_000, continues, (), {}, trips={"web/health": (Trip(t0 + 2_000, False, 600),)}
        )
        built = two_segments_report(sla, first, after, t0)
        (result,) = [k for k in built.kpis if k.name == "rt"]
        assert (result.count, result.over_limit) == (3, 3)
        return result.level

    assert level("segment-000001.jsonl") == 2  # 2,000 ms since the run began + 600 ms
    assert level("") == 1  # counted from the restart: 600 ms, a failed trip is at least level 1


def test_a_torn_last_line_is_read_where_its_seal_records_it(sealed: Sealed, tmp_path: Path) -> None:
    """A crash can cut the last write short; the restart seals the segment with its torn bytes,
    and the report reads the whole lines before them. A torn tail no seal records is refused."""
    folder, path, seal = copied_seal(sealed, tmp_path, sealed.segments)
    seal_path(path).unlink()
    for sig in folder.glob(f"{seal_path(path).name}.*.sig"):
        sig.unlink()
    with path.open("ab") as out:
        out.write(b'{"seq":99999,"type":"probe.obs')
    result, _ = report(sealed, folder)
    assert result.exit_code == 2 and "refused" in result.output, result.output
    scan = scan_segment(path, allow_torn_tail=True, tracked=("web/health",))
    write_seal(path, seal_of(path, sealed.segments, scan, "after restart", seal.sealed_utc), None)
    assert scan.torn_bytes == 30
    result, data = report(sealed, folder)
    assert result.exit_code in (0, 1), result.output
    _, before = report(sealed, sealed.folder)
    assert data["kpis"] == before["kpis"]
    assert [s["availability"] for s in data["services"]] == [s["availability"] for s in before["services"]]


def test_a_restart_reads_the_period_from_seals_and_leaves_out_what_it_cannot_use(
    sealed: Sealed, tmp_path: Path
) -> None:
    """watch_timelines_since: the folder's downtime from its seals' digests, cut at the instant;
    a seal without a digest (format 1) or not readable is left out, never re-read or fatal."""
    from drill.sla.sources import timelines_from_journals, watch_timelines_since

    segments = sorted(sealed.folder.glob("segment-*.jsonl"))
    (full,) = timelines_from_journals(segments, [("web", ["web/health"])])
    downs = [s for s in full.spans if s.health == "down"]
    assert downs
    # inside the outage, and just after each segment's last event: there the segment's last
    # observation still holds (a rotation carries it to the next segment's first observation)
    ends = [utc_ms(seal.last_utc) + 1 for seal in map(read_seal, segments[:-1]) if seal is not None]
    for since in [downs[0].start_ms + 1, *ends]:
        (seen,) = watch_timelines_since(sealed.folder, [("web", ["web/health"])], since)
        assert seen.spans[0].start_ms == since  # cut there
        assert [(s.start_ms, s.end_ms, s.health) for s in seen.spans] == [
            (max(s.start_ms, since), s.end_ms, s.health) for s in full.spans if s.end_ms > since
        ]
    since = downs[0].start_ms + 1
    folder, path, seal = copied_seal(sealed, tmp_path, sealed.segments)
    seal_path(path).write_bytes(replace(seal, digest=None, format=1).to_bytes())
    seal_path(folder / segment_name(sealed.segments - 1)).write_bytes(b"not a seal")
    (partial,) = watch_timelines_since(folder, [("web", ["web/health"])], since)
    last_two = {s.source.split("#")[0] for s in partial.spans} & {
        f"journal {folder / segment_name(n)}" for n in (sealed.segments, sealed.segments - 1)
    }
    assert not last_two, partial.spans
