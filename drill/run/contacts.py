"""`drill contacts test`: rehearse the phone tree alone (no probes, no actions), with evidence."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from drill import events as ev
from drill.clock import Clock, SystemClock
from drill.errors import EXIT_FAILED, EXIT_OK, UsageError
from drill.events import EventDraft
from drill.notify.ack import AckServer
from drill.notify.escalation import run_contact_drill
from drill.playbook.model import Playbook
from drill.run.journal import JournalWriter
from drill.run.runner import (
    JOURNAL_FILE,
    RunOptions,
    RunOutcome,
    finish_run,
    open_run_dir,
    secrets_for,
    started_data,
)


@dataclass(frozen=True, slots=True)
class ContactTestOptions:
    ack_host: str = "127.0.0.1"
    ack_port: int = 0
    public_url: str = ""


async def run_contact_test(
    playbook: Playbook,
    options: RunOptions,
    contact: ContactTestOptions = ContactTestOptions(),
    *,
    clock: Clock | None = None,
    on_ready: Callable[[AckServer], None] | None = None,
) -> RunOutcome:
    """Page every chain now, wait for acks or exhaustion, journal it all, fold the results."""
    if not playbook.chains:
        raise UsageError(
            f"{playbook.source} has no contact chains to test", hint="add contacts.chains to the playbook"
        )
    clock = clock or SystemClock()
    secrets = secrets_for(playbook, options.env)
    run_id, run_dir = open_run_dir(options, clock)
    journal_path = run_dir / JOURNAL_FILE
    with JournalWriter.create(journal_path, clock, redact=secrets.redact) as journal:

        def emit(draft: EventDraft) -> None:
            journal.append(draft, sync=True)

        emit(
            EventDraft(
                ev.RUN_STARTED,
                clock.monotonic_ns(),
                {**started_data(playbook, options, run_id, clock), "mode": "contacts"},
            )
        )
        emit(EventDraft(ev.INJECTED, clock.monotonic_ns(), {"step": "contact-chain drill"}))
        outcome = await run_contact_drill(
            playbook,
            secrets,
            clock,
            emit,
            run_id=run_id,
            run_dir=run_dir,
            ack_host=contact.ack_host,
            ack_port=contact.ack_port,
            public_url=contact.public_url,
            on_ready=on_ready,
        )
        (run_dir / "ack.url").unlink(missing_ok=True)
        exhausted = [c.chain for c in outcome.chains if c.exhausted]
        reason = f"exhausted: {', '.join(exhausted)}" if exhausted else ""
        emit(EventDraft(ev.RUN_FINISHED, clock.monotonic_ns(), {"status": "completed", "reason": reason}))
    summary, results = finish_run(journal_path)
    return RunOutcome(
        run_dir, journal_path, results, summary, EXIT_OK if results["verdict"] == "pass" else EXIT_FAILED
    )
