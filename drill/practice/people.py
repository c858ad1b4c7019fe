"""People over time: each contact's acknowledgement rate and time-to-ack across the history, and
the contacts to worry about, with who to call instead.

`people_history(records, orders)` is a pure fold over the history's RunRecords (their PageRecords);
`read_chain_orders(record)` is the one function here that reads a folder (the plan journalled in
run.started), and `chain_order_runs(records)` says whose plan to read.

What counts, and why:
- Only verified evidence (RunRecord.countable); a tampered, unsigned or unreadable folder is
  listed in `excluded` with the record's problem and never counted.
- Drills (mode "drill") and contact tests (mode "contacts") both count: each pages real people
  through real channels, and a contact test is the rehearsal of exactly that.
- A contact is its chain and its name (the same name in two chains is two contacts: two
  escalation paths). Each page is a sample: a page that was not delivered is a page sent and not
  acknowledged (the person was not reached), so the acknowledgement rate is acknowledged pages
  over pages sent, in integer basis points (floored). Time-to-ack (median and worst) is taken
  from the acknowledged pages only; None ("not measured") when there are none, never 0. The
  median of an even count is the mean of the two middle values, rounded half up.
- Runs are in run order: started_utc (parsed, so offsets compare right; generated_utc when the
  run never started), then run id. A run counts once: of two verified reports of one run id
  (rebuilt and re-signed), the one generated last; the other is excluded as superseded.

Flags:
- "no-ack-twice": in the contact's last two runs that paged them, none of their pages was
  acknowledged (one miss between two acknowledgements is not flagged: it is not a pattern).
- "channel-failed": in the contact's latest run that paged them, a page was not delivered (the
  reasons shown): the channel itself has to be fixed before the person can be reached.

A flagged contact gets the chain's substitute path: the chain's other contacts in escalation
order. That order is the plan journalled in run.started of the latest counted run that paged
the chain (read by `read_chain_orders`, only when the folder's report.json still has the bytes
that were verified and the journal still has the digest the report states), else the order in
which that run's pages went out (which only knows the contacts that were paged). Which one was
used is stated (`ChainOrder.source`).
"""

from __future__ import annotations

import hashlib
import json
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal

from drill.errors import DrillError
from drill.evidence.events import RunStarted
from drill.evidence.inputs import REPORT_LIMIT, read_bounded
from drill.evidence.journal import file_sha256, read_events
from drill.practice.records import VERIFIED, PageRecord, RunRecord
from drill.report.model import report_from_data
from drill.report.sign import REPORT_FILE
from drill.results import plan_of
from drill.units import human_count, human_ms

NO_ACK_TWICE: Final = "no-ack-twice"
CHANNEL_FAILED: Final = "channel-failed"
FROM_PLAN: Final = "plan"  # the plan journalled in run.started
FROM_PAGES: Final = "pages"  # the order the run's pages went out

FlagKind = Literal["no-ack-twice", "channel-failed"]
OrderSource = Literal["plan", "pages"]
_EPOCH = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Substitute:
    """One contact of a chain's escalation path (role and via as far as the source knows them)."""

    contact: str
    via: str
    role: str = ""


@dataclass(frozen=True, slots=True)
class ChainOrder:
    """A chain's contacts in escalation order, and where that order was read."""

    chain: str
    contacts: tuple[Substitute, ...]
    source: OrderSource
    run_id: str  # the run whose plan (or pages) gave the order


@dataclass(frozen=True, slots=True)
class Flag:
    """Why a contact needs attention, and the runs that show it."""

    kind: FlagKind
    runs: tuple[str, ...]  # run ids, in run order
    reasons: tuple[str, ...] = ()  # channel-failed: each undelivered page's reason


@dataclass(frozen=True, slots=True)
class RunSample:
    """What one counted run shows of one contact (a run may page a contact more than once)."""

    run_id: str
    mode: str  # drill | contacts
    started_utc: str  # generated_utc when the run never started
    pages: int
    delivered: int
    acknowledged: int
    first_ack_ms: int | None  # the contact's fastest acknowledgement in this run; None: none


@dataclass(frozen=True, slots=True)
class ContactHistory:
    """One contact (chain + name) over the counted runs that paged them."""

    chain: str
    contact: str
    via: tuple[str, ...]  # the channels used, in first-use order
    runs: int  # counted runs that paged this contact
    pages: int  # pages sent (delivered or not)
    delivered: int
    acknowledged: int
    ack_rate_bp: int  # acknowledged * 10000 // pages (a contact exists only once paged: pages > 0)
    median_ack_ms: int | None  # from acknowledged pages only; None: not measured
    worst_ack_ms: int | None
    last_run_id: str
    last_run_utc: str
    flags: tuple[Flag, ...]
    substitutes: tuple[Substitute, ...]  # the chain's other contacts; () unless flagged
    samples: tuple[RunSample, ...]  # run by run, in run order

    @property
    def flagged(self) -> bool:
        return bool(self.flags)


@dataclass(frozen=True, slots=True)
class Excluded:
    """A run left out, and why (the record's status and problem)."""

    run_id: str
    folder: str
    status: str
    reason: str


@dataclass(frozen=True, slots=True)
class PeopleHistory:
    """The fold's result: contacts flagged first, then by chain and escalation order."""

    contacts: tuple[ContactHistory, ...]
    chains: tuple[ChainOrder, ...]  # the order used for each chain, by chain name
    used: tuple[str, ...]  # run ids of the counted runs, in run order
    excluded: tuple[Excluded, ...]


# ---------------------------------------------------------------- the fold


def people_history(
    records: Iterable[RunRecord], orders: Mapping[str, ChainOrder] | None = None
) -> PeopleHistory:
    """Fold the records into each contact's history. `orders`: chain -> escalation order read
    from a plan (read_chain_orders); a chain without one gets its latest run's pages order."""
    counted, excluded = _split(records)
    paged: dict[tuple[str, str], list[tuple[RunRecord, tuple[PageRecord, ...]]]] = {}
    for record in counted:
        for key, pages in _pages_by_contact(record).items():
            paged.setdefault(key, []).append((record, pages))
    chains = _chain_orders(counted, orders or {})
    contacts = [_contact(chain, name, runs, chains.get(chain)) for (chain, name), runs in paged.items()]
    contacts.sort(key=lambda c: (not c.flagged, c.chain, _position(chains.get(c.chain), c.contact)))
    return PeopleHistory(
        contacts=tuple(contacts),
        chains=tuple(chains[name] for name in sorted(chains)),
        used=tuple(r.run_id for r in counted),
        excluded=tuple(excluded),
    )


def _split(records: Iterable[RunRecord]) -> tuple[list[RunRecord], list[Excluded]]:
    """(countable runs in run order, one report per run id; the others as Excluded). Two
    verified reports of one run (it was rebuilt and re-signed: other bytes) are one run: the
    report generated last counts, so its pages are not counted twice."""
    latest: dict[str, RunRecord] = {}
    excluded: list[Excluded] = []
    for record in records:
        if not record.countable:
            excluded.append(Excluded(record.run_id, record.folder, record.status, record.problem))
            continue
        kept = latest.get(record.run_id)
        if kept is None:
            latest[record.run_id] = record
            continue
        newer, older = sorted((kept, record), key=_generated, reverse=True)
        latest[record.run_id] = newer
        excluded.append(
            Excluded(
                older.run_id,
                older.folder,
                older.status,
                f"superseded: a report of the same run generated later ({newer.generated_utc}) is counted",
            )
        )
    return sorted(latest.values(), key=run_order), excluded


def _generated(record: RunRecord) -> tuple[datetime, str]:
    return _when(record.generated_utc), record.folder


def _when(text: str) -> datetime:
    """A UTC ISO 8601 time as an aware datetime (naive read as UTC); the epoch when unreadable."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return _EPOCH
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def run_order(record: RunRecord) -> tuple[datetime, str]:
    """started_utc (generated_utc when the run never started) as a time, then the run id."""
    return _when(record.started_utc or record.generated_utc), record.run_id


def _pages_by_contact(record: RunRecord) -> dict[tuple[str, str], tuple[PageRecord, ...]]:
    found: dict[tuple[str, str], list[PageRecord]] = {}
    for page in record.pages:
        found.setdefault((page.chain, page.contact), []).append(page)
    return {key: tuple(pages) for key, pages in found.items()}


def _contact(
    chain: str,
    name: str,
    runs: Sequence[tuple[RunRecord, tuple[PageRecord, ...]]],
    order: ChainOrder | None,
) -> ContactHistory:
    pages = [p for _, run_pages in runs for p in run_pages]
    acked = sorted(p.ack_ms for p in pages if p.acked and p.ack_ms is not None)
    acknowledged = sum(1 for p in pages if p.acked)
    last = runs[-1][0]
    flags = _flags(runs)
    return ContactHistory(
        chain=chain,
        contact=name,
        via=tuple(dict.fromkeys(p.via for p in pages)),
        runs=len(runs),
        pages=len(pages),
        delivered=sum(1 for p in pages if p.delivered),
        acknowledged=acknowledged,
        ack_rate_bp=acknowledged * 10000 // len(pages),
        median_ack_ms=median_ms(acked),
        worst_ack_ms=acked[-1] if acked else None,
        last_run_id=last.run_id,
        last_run_utc=last.started_utc or last.generated_utc,
        flags=flags,
        substitutes=_substitutes(order, name) if flags else (),
        samples=tuple(_sample(record, run_pages) for record, run_pages in runs),
    )


def _sample(record: RunRecord, pages: Sequence[PageRecord]) -> RunSample:
    return RunSample(
        run_id=record.run_id,
        mode=record.mode,
        started_utc=record.started_utc or record.generated_utc,
        pages=len(pages),
        delivered=sum(1 for p in pages if p.delivered),
        acknowledged=sum(1 for p in pages if p.acked),
        first_ack_ms=min((p.ack_ms for p in pages if p.acked and p.ack_ms is not None), default=None),
    )


def median_ms(values: Sequence[int]) -> int | None:
    """The median of sorted values (even count: the two middle ones' mean, rounded half up)."""
    if not values:
        return None
    middle = len(values) // 2
    if len(values) % 2:
        return values[middle]
    return (values[middle - 1] + values[middle] + 1) // 2


def _flags(runs: Sequence[tuple[RunRecord, tuple[PageRecord, ...]]]) -> tuple[Flag, ...]:
    flags: list[Flag] = []
    lasts = runs[-2:]
    if len(lasts) == 2 and not any(p.acked for _, pages in lasts for p in pages):
        flags.append(Flag(NO_ACK_TWICE, tuple(r.run_id for r, _ in lasts)))
    last, pages = runs[-1]
    failed = [p for p in pages if not p.delivered]
    if failed:
        reasons = tuple(dict.fromkeys(f"{p.via}: {p.reason or 'no reason recorded'}" for p in failed))
        flags.append(Flag(CHANNEL_FAILED, (last.run_id,), reasons))
    return tuple(flags)


def _chain_orders(counted: Sequence[RunRecord], given: Mapping[str, ChainOrder]) -> dict[str, ChainOrder]:
    """Each paged chain's order: the given (plan) one, else its latest run's pages order."""
    orders: dict[str, ChainOrder] = {}
    for chain, record in chain_order_runs(counted).items():
        known = given.get(chain)
        orders[chain] = known if known is not None else _pages_order(chain, record)
    return orders


def chain_order_runs(records: Iterable[RunRecord]) -> dict[str, RunRecord]:
    """chain -> the latest countable run (run order) that paged it: whose plan to read."""
    latest: dict[str, RunRecord] = {}
    for record in sorted((r for r in records if r.countable), key=run_order):
        for page in record.pages:
            latest[page.chain] = record
    return latest


def _pages_order(chain: str, record: RunRecord) -> ChainOrder:
    seen: dict[str, Substitute] = {}
    for page in record.pages:
        if page.chain == chain and page.contact not in seen:
            seen[page.contact] = Substitute(page.contact, page.via)
    return ChainOrder(chain, tuple(seen.values()), FROM_PAGES, record.run_id)


def _position(order: ChainOrder | None, contact: str) -> tuple[int, str]:
    names = [s.contact for s in order.contacts] if order is not None else []
    return (names.index(contact), contact) if contact in names else (len(names), contact)


def _substitutes(order: ChainOrder | None, contact: str) -> tuple[Substitute, ...]:
    if order is None:
        return ()
    return tuple(s for s in order.contacts if s.contact != contact)


# ---------------------------------------------------------------- reading a plan


def read_chain_orders(record: RunRecord) -> dict[str, ChainOrder]:
    """chain -> escalation order from the plan journalled in the record's run.started; {} when
    the folder cannot be read, or its report.json is not the verified one (other bytes), or its
    journal does not have the digest that report states (then the pages order is used)."""
    folder = Path(record.folder)
    try:
        data = read_bounded(folder / REPORT_FILE, REPORT_LIMIT, "report")
        if hashlib.sha256(data).hexdigest() != record.report_sha256:
            return {}
        report = report_from_data(json.loads(data))
        journal = folder / Path(report.journal.file).name
        if file_sha256(journal) != report.journal.sha256:
            return {}
        first = next(read_events(journal), None)
        if first is None or not isinstance(first.payload, RunStarted):
            return {}
        plan = plan_of(first.payload)
    except (DrillError, OSError, ValueError, KeyError, TypeError):
        return {}
    return {
        chain.name: ChainOrder(
            chain.name,
            tuple(Substitute(c.name, c.via, c.role) for c in chain.contacts),
            FROM_PLAN,
            record.run_id,
        )
        for chain in plan.chains
    }


def plan_orders(records: Iterable[RunRecord]) -> dict[str, ChainOrder]:
    """For each paged chain, its order from the plan of the latest counted run that paged it
    (each folder read once); chains whose plan cannot be read are left out."""
    orders: dict[str, ChainOrder] = {}
    read: dict[str, dict[str, ChainOrder]] = {}
    for chain, record in chain_order_runs(records).items():
        if record.report_sha256 not in read:
            read[record.report_sha256] = read_chain_orders(record)
        found = read[record.report_sha256].get(chain)
        if found is not None:
            orders[chain] = found
    return orders


# ---------------------------------------------------------------- serialisation


def people_data(history: PeopleHistory) -> dict[str, object]:
    """The history as JSON data: integers in ms and basis points, None (null) when not measured."""
    return {
        "used": list(history.used),
        "excluded": [
            {"run_id": e.run_id, "folder": e.folder, "status": e.status, "reason": e.reason}
            for e in history.excluded
        ],
        "chains": [
            {
                "chain": o.chain,
                "order": [_substitute_data(s) for s in o.contacts],
                "order_source": o.source,
                "order_run_id": o.run_id,
            }
            for o in history.chains
        ],
        "contacts": [_contact_data(c) for c in history.contacts],
    }


def _substitute_data(s: Substitute) -> dict[str, str]:
    return {"contact": s.contact, "via": s.via, "role": s.role}


def _contact_data(c: ContactHistory) -> dict[str, object]:
    return {
        "chain": c.chain,
        "contact": c.contact,
        "via": list(c.via),
        "runs": c.runs,
        "pages": c.pages,
        "delivered": c.delivered,
        "acknowledged": c.acknowledged,
        "ack_rate_bp": c.ack_rate_bp,
        "median_ack_ms": c.median_ack_ms,
        "worst_ack_ms": c.worst_ack_ms,
        "last_run_id": c.last_run_id,
        "last_run_utc": c.last_run_utc,
        "flagged": c.flagged,
        "flags": [{"kind": f.kind, "runs": list(f.runs), "reasons": list(f.reasons)} for f in c.flags],
        "substitutes": [_substitute_data(s) for s in c.substitutes],
        "runs_detail": [
            {
                "run_id": r.run_id,
                "mode": r.mode,
                "started_utc": r.started_utc,
                "pages": r.pages,
                "delivered": r.delivered,
                "acknowledged": r.acknowledged,
                "first_ack_ms": r.first_ack_ms,
            }
            for r in c.samples
        ],
    }


# ---------------------------------------------------------------- text

WIDTH = 80
_NOT_MEASURED = "not measured"
_ROW = "  {:<18}{:>6}{:>7}{:>7}{:>10}  {:<14}{:<14}"


def people_text(history: PeopleHistory) -> list[str]:
    """For people, in 80 columns (long names and run ids aside): the flagged contacts with their
    substitute path first, then a table per chain, then the runs left out and why."""
    lines = [
        f"contacts over {human_count(len(history.used), 'counted run')}"
        + (f" ({len(history.excluded)} excluded, below)" if history.excluded else "")
    ]
    if not history.contacts:
        lines.append("no counted run paged anyone")
    flagged = [c for c in history.contacts if c.flagged]
    orders = {o.chain: o for o in history.chains}
    if flagged:
        lines += ["", f"FLAGGED ({len(flagged)}, marked ! in the tables below)"]
        for contact in flagged:
            lines += _flagged_lines(contact, orders.get(contact.chain))
    for order in history.chains:
        lines += ["", _wrapped(f"chain {order.chain} (escalation order: {_source_text(order)})", "")]
        lines.append(
            _ROW.format("CONTACT", "PAGES", "DELIV", "ACKED", "ACK RATE", "MEDIAN ACK", "WORST ACK").rstrip()
        )
        for contact in (c for c in history.contacts if c.chain == order.chain):
            mark = "! " if contact.flagged else ""
            lines.append(
                _ROW.format(
                    mark + contact.contact,
                    contact.pages,
                    contact.delivered,
                    contact.acknowledged,
                    f"{contact.ack_rate_bp // 100}.{contact.ack_rate_bp % 100:02d} %",
                    _ms(contact.median_ack_ms),
                    _ms(contact.worst_ack_ms),
                ).rstrip()
            )
            acked_runs = sum(1 for r in contact.samples if r.acknowledged)
            lines.append(
                _wrapped(
                    f"acknowledged in {acked_runs} of {human_count(contact.runs, 'run')} via "
                    f"{', '.join(contact.via)}; last run {contact.last_run_id}",
                    "    ",
                )
            )
    if history.excluded:
        lines += ["", "EXCLUDED (never counted)"]
        for run in history.excluded:
            label = "SUPERSEDED" if run.status == VERIFIED else run.status.upper()
            lines.append(f"  {label:<11}{run.run_id or '—'}  {run.folder}")
            lines.append(_wrapped(run.reason, "    "))
    return lines


def _flagged_lines(contact: ContactHistory, order: ChainOrder | None) -> list[str]:
    said = []
    for flag in contact.flags:
        if flag.kind == NO_ACK_TWICE:
            said.append(f"did not acknowledge in two consecutive runs: {', '.join(flag.runs)}")
        else:
            said.append(f"channel failed in the latest run {flag.runs[0]}: {'; '.join(flag.reasons)}")
    if contact.substitutes:
        said.append(f"substitute path: {' -> '.join(_who(s) for s in contact.substitutes)}")
    else:
        said.append(f"substitute path: none: {contact.chain} has no other contact")
    if order is not None:
        said.append(f"(escalation order: {_source_text(order)})")
    lines = [f"  {contact.chain} / {contact.contact} (via {', '.join(contact.via)})"]
    return lines + [_wrapped(text, "    ") for text in said]


def _wrapped(text: str, indent: str) -> str:
    """text in WIDTH columns, later lines indented two more; a run id is never broken."""
    wrapped = textwrap.wrap(
        text,
        WIDTH,
        initial_indent=indent,
        subsequent_indent=indent + "  ",
        break_long_words=False,
        break_on_hyphens=False,
    )
    return "\n".join(wrapped)


def _who(s: Substitute) -> str:
    detail = ", ".join(part for part in (s.role, s.via) if part)
    return f"{s.contact} ({detail})" if detail else s.contact


def _source_text(order: ChainOrder) -> str:
    if order.source == FROM_PLAN:
        return f"the plan journalled in run {order.run_id}"
    return f"the pages of run {order.run_id}, paged contacts only"


def _ms(ms: int | None) -> str:
    return _NOT_MEASURED if ms is None else human_ms(ms)
