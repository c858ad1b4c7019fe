"""`drill contacts test`: rehearse the phone tree alone (no probes, no actions), with evidence."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from drill.clock import Clock, SystemClock
from drill.errors import UsageError
from drill.evidence.events import EventDraft, FailureInjected, RunStatus
from drill.notify.ack import AckServer
from drill.notify.escalation import run_contact_drill
from drill.plan import build_plan
from drill.playbook.model import Playbook
from drill.run.session import RunOptions, RunOutcome, RunSession, outcome_of, secrets_for


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
    secrets = secrets_for(playbook, options.env, options.variables)
    with RunSession.open(playbook, build_plan(playbook), options, clock, secrets, mode="contacts") as session:

        def emit(draft: EventDraft) -> None:
            session.emit_draft(draft, sync=True)

        session.emit(FailureInjected("contact-chain drill"))
        async with session.syncing():
            outcome = await run_contact_drill(
                playbook,
                secrets,
                clock,
                emit,
                run_id=session.run_id,
                run_dir=session.run_dir,
                ack_host=contact.ack_host,
                ack_port=contact.ack_port,
                public_url=contact.public_url,
                on_ready=on_ready,
            )
        (session.run_dir / "ack.url").unlink(missing_ok=True)
        exhausted = [c.chain for c in outcome.chains if c.exhausted]
        session.finish(RunStatus.COMPLETED, f"exhausted: {', '.join(exhausted)}" if exhausted else "")
    return outcome_of(session)
