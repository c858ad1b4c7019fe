"""`drill run --dry-run`: a readiness check that changes nothing and runs no action.

It resolves every secret, probes every asset once, and checks that every endpoint the drill
will need answers, without using it:
- each notifier of each contact: a TCP connection to the host and port of its URL (webhook,
  slack, dingtalk, pagerduty), or for email an SMTP session of EHLO (STARTTLS when the contact
  asks for it) then QUIT: no MAIL FROM, nothing sent, nobody paged;
- each action: an http action's host and port accept a TCP connection (no request is sent); a
  command action's executable exists and is executable, found as the runner would start it
  (a relative path against the action's cwd, by default the playbook's folder; a bare name on
  PATH).
Every check runs concurrently and under a short deadline, every problem is one NOT READY line
(redacted), and none is raised: the operator fixes them all before the real run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import urllib.parse
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiosmtplib

from drill.actions.command import CommandActionSpec
from drill.actions.http import HttpActionSpec
from drill.actions.registry import ACTION_KINDS
from drill.clock import Clock, SystemClock
from drill.errors import DrillError, SecretUnresolved
from drill.notify.email import EmailSpec
from drill.notify.registry import NOTIFIER_KINDS
from drill.playbook.model import OUTPUT_REFERENCE, ActionStep, Playbook, walk_steps
from drill.probes.registry import PROBE_KINDS
from drill.probes.tcp import connect_failure_reason
from drill.run.scheduler import LiveProbeContext, Resources, ScheduledProbe, run_probe_once
from drill.run.session import secrets_for
from drill.run.sites.coordinator import agent_answers
from drill.secrets import Secrets, cut_end
from drill.units import human_ms

REASON_LIMIT = 300  # characters of a reason on one readiness line

ENDPOINT_TIMEOUT_MIN_MS = 2_000  # a notifier is often across the Internet: DNS + a handshake
ENDPOINT_TIMEOUT_MAX_MS = 10_000  # a dry run stays short whatever the probes' timeout is


@dataclass(frozen=True, slots=True)
class Check:
    what: str  # "probe api/health", "notifier oncall/alice (email smtp 127.0.0.1:25)"
    ok: bool
    reason: str = ""
    checked: bool = True  # False: only the run itself can check it (it uses a captured output)


@dataclass(frozen=True, slots=True)
class Readiness:
    checks: tuple[Check, ...]

    @property
    def ready(self) -> bool:
        return all(c.ok for c in self.checks)

    def lines(self) -> list[str]:
        out = [
            f"{'ok ' if c.ok else 'NOT READY'} {c.what}" + (f": {c.reason}" if c.reason else "")
            for c in self.checks
        ]
        bad = sum(not c.ok for c in self.checks)
        unchecked = sum(not c.checked for c in self.checks)
        if bad:
            out.append(f"not ready: {bad} problem(s)")
        else:
            out.append(
                "ready: every secret resolves, every asset answers, every notifier and action endpoint"
                " is reachable"
                + (f" ({unchecked} known only during the run, not checked)" if unchecked else "")
            )
        return out


class _Unusable(Exception):
    """An endpoint that cannot even be tried (a URL without a host, a port out of range ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Endpoint:
    """One endpoint to check: `reach()` answers '' when it is reachable, else why not."""

    label: str  # "notifier oncall/alice", "action in step 'fail over'"
    shown: str  # "email smtp 127.0.0.1:25": what the ok line says was checked
    where: str  # "127.0.0.1:25": what a timeout says did not answer
    reach: Callable[[], Awaitable[str]]


_Entry = Check | ScheduledProbe | _Endpoint  # in the order of the report


def _resolve(
    secrets: Secrets, what: str, params: Mapping[str, object], where: str = ""
) -> tuple[Check | None, dict[str, object] | None]:
    try:
        return None, secrets.resolve_params(params, where or what)
    except SecretUnresolved as exc:
        return Check(what, False, exc.message), None


def _unusable_params(what: str, exc: Exception) -> Check:
    text = exc.message if isinstance(exc, DrillError) else f"{type(exc).__name__}: {exc}"
    return Check(what, False, f"its parameters cannot be used: {text}")


async def check_readiness(
    playbook: Playbook,
    env: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    variables: Mapping[str, str] | None = None,
    broker: str = "",
) -> Readiness:
    """Every problem found, none raised: the operator fixes them all before the real run."""
    clock = clock or SystemClock()
    secrets = secrets_for(playbook, env, variables)
    timeout_ms = endpoint_timeout_ms(playbook)
    entries: list[_Entry] = []
    for asset in playbook.assets:
        for probe in asset.probes:
            what = f"probe {asset.id}/{probe.name}"
            if probe.remote:  # its agents resolve its secrets and reach its target, not this host
                sites = ", ".join(probe.sites)
                entries.append(
                    Check(
                        what,
                        True,
                        f"probed from sites {sites} (quorum {probe.quorum}), not from here",
                        checked=False,
                    )
                )
                continue
            problem, params = _resolve(secrets, what, probe.params)
            if problem or params is None:
                entries.extend([problem] if problem else [])
                continue
            try:
                kind = PROBE_KINDS[probe.kind]
                entries.append(ScheduledProbe(asset.id, probe, kind, kind.parse(params)))
            except Exception as exc:  # no traceback for bad input: a line saying what is wrong
                entries.append(_unusable_params(what, exc))
    entries.extend(_site_entries(playbook, broker, timeout_ms))
    cwd = str(Path(playbook.source).parent or ".")  # as the runner gives actions (Runner._cwd)
    for step in walk_steps((*playbook.scenario, *playbook.rollback)):
        if isinstance(step, ActionStep):
            entries.append(_action_entry(step, secrets, cwd))
    for chain in playbook.chains:
        for contact in chain.contacts:
            what = f"notifier {chain.name}/{contact.name}"
            problem, params = _resolve(secrets, what, contact.params, f"contact {chain.name}/{contact.name}")
            entries.append(problem or _notifier_entry(what, contact.via, params or {}, timeout_ms))
    checks = await _check_all(entries, clock, timeout_ms, secrets.redact_text)
    return Readiness(tuple(_redact(c, secrets) for c in checks))


def _site_entries(playbook: Playbook, broker: str, timeout_ms: int) -> list[_Entry]:
    """One check per site whose agents probe something: an agent answers through the broker."""
    busy = [
        s.name for s in playbook.sites if any(s.name in p.sites for a in playbook.assets for p in a.probes)
    ]
    if busy and not broker:
        return [
            Check(f"site {site}", False, "no --broker given: its agent cannot be reached") for site in busy
        ]
    return [
        _Endpoint(
            f"site {site}",
            f"an agent answers through {broker}",
            broker,
            partial(agent_answers, broker, site, timeout_ms / 1000),
        )
        for site in busy
    ]


def endpoint_timeout_ms(playbook: Playbook) -> int:
    """The deadline of one endpoint check: the playbook's timeout, at least 2 s, at most 10 s."""
    return min(max(playbook.settings.timeout_ms, ENDPOINT_TIMEOUT_MIN_MS), ENDPOINT_TIMEOUT_MAX_MS)


def _redact(check: Check, secrets: Secrets) -> Check:
    """Redacted first, then cut: a server's text may quote a secret, and a cut could split it."""
    reason = cut_end(secrets.redact_text(check.reason), REASON_LIMIT)
    return Check(secrets.redact_text(check.what), check.ok, reason, check.checked)


async def _check_all(
    entries: list[_Entry], clock: Clock, timeout_ms: int, redact: Callable[[str], str]
) -> list[Check]:
    """Run every probe and endpoint check at once; the checks in the order of `entries`."""
    resources = Resources([e for e in entries if isinstance(e, ScheduledProbe)])
    try:

        async def probe_once(p: ScheduledProbe) -> Check:
            ctx = LiveProbeContext.for_probe(p, resources, clock, lambda draft: None, redact)
            obs = await run_probe_once(p, ctx, clock)
            return Check(f"probe {p.asset}/{p.probe.name}", obs.ok, obs.reason)

        async def done(check: Check) -> Check:
            return check

        def job(entry: _Entry) -> Coroutine[Any, Any, Check]:
            if isinstance(entry, ScheduledProbe):
                return probe_once(entry)
            if isinstance(entry, _Endpoint):
                return _check_endpoint(entry, timeout_ms)
            return done(entry)

        return list(await asyncio.gather(*(job(e) for e in entries)))
    finally:
        await resources.aclose()


async def _check_endpoint(endpoint: _Endpoint, timeout_ms: int) -> Check:
    try:
        async with asyncio.timeout(timeout_ms / 1000):
            reason = await endpoint.reach()
    except TimeoutError:
        reason = f"no answer from {endpoint.where} within {human_ms(timeout_ms)}"
    except Exception as exc:  # a check must never end the report
        reason = f"cannot check {endpoint.where}: {type(exc).__name__}: {exc}"
    if reason:
        return Check(endpoint.label, False, reason)
    return Check(f"{endpoint.label} ({endpoint.shown})", True)


def _unchecked(what: str, text: str) -> Check:
    uses = ", ".join(sorted({f"'{m.group(1)}'" for m in OUTPUT_REFERENCE.finditer(text)}))
    return Check(what, True, f"not checked before the run: it uses the output of step {uses}", checked=False)


# --- endpoints of URLs -------------------------------------------------------------------------


def _url_endpoint(url: str) -> tuple[str, int]:
    """The host and port an http(s) URL connects to (80/443 by default); _Unusable says why not.

    The URL itself is never quoted: a webhook URL usually carries a token.
    """
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise _Unusable(f"the URL cannot be parsed ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise _Unusable(
            f"the URL's scheme must be http or https, not {scheme!r}" if scheme else "the URL has no scheme"
        )
    host = parts.hostname
    if not host:
        raise _Unusable("the URL has no host")
    if port == 0:
        raise _Unusable("the URL's port must be 1-65535, not 0")
    return host, port if port is not None else (443 if scheme == "https" else 80)


def _where(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _tcp_reach(host: str, port: int) -> str:
    """'' when host:port accepts a TCP connection (closed at once, nothing sent), else why not."""
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        return connect_failure_reason(exc, host, port)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return ""


def _url_entry(label: str, kind: str, url: str) -> _Endpoint | Check:
    try:
        host, port = _url_endpoint(url)
    except _Unusable as exc:
        return Check(label, False, f"{kind}: {exc.reason}")
    where = _where(host, port)
    return _Endpoint(label, f"{kind} {where}", where, lambda: _tcp_reach(host, port))


# --- notifiers ---------------------------------------------------------------------------------


def _notifier_entry(what: str, via: str, params: Mapping[str, object], timeout_ms: int) -> _Endpoint | Check:
    kind = NOTIFIER_KINDS.get(via)
    if kind is None:
        return Check(
            what, False, f"unknown notifier kind {via!r} (one of: {', '.join(sorted(NOTIFIER_KINDS))})"
        )
    try:
        spec = kind.parse(params)
    except Exception as exc:
        return _unusable_params(what, exc)
    if isinstance(spec, EmailSpec):
        where = _where(spec.smtp_host, spec.smtp_port)
        shown = f"email smtp{' starttls' if spec.starttls else ''} {where}"
        # per command a little past the whole check's deadline, so a silent server is one message
        return _Endpoint(what, shown, where, lambda: _smtp_reach(spec, timeout_ms / 1000 + 1))
    url = getattr(spec, "url", None)
    if isinstance(url, str):
        return _url_entry(what, via, url)
    return Check(what, True, f"not checked: no endpoint check for {via} notifiers", checked=False)


async def _smtp_reach(spec: EmailSpec, timeout_s: float) -> str:
    """'' when the SMTP server greets, answers EHLO (and STARTTLS when the contact uses it) and
    offers AUTH when the contact logs in; else why not. Then QUIT: no MAIL FROM, nothing sent.

    `timeout_s` bounds each command; the caller bounds the whole session (a little sooner).
    """
    smtp = aiosmtplib.SMTP(
        hostname=spec.smtp_host, port=spec.smtp_port, timeout=timeout_s, start_tls=False, use_tls=False
    )
    try:
        try:
            await smtp.connect()
            problem = await _smtp_session(smtp, spec)
        except Exception as exc:
            problem = _smtp_failure(exc, spec)
        if smtp.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await smtp.quit()  # the goodbye is courtesy: its failure changes nothing
        return problem
    finally:
        smtp.close()


async def _smtp_session(smtp: aiosmtplib.SMTP, spec: EmailSpec) -> str:
    try:
        await smtp.ehlo()
    except aiosmtplib.SMTPHeloError:
        await smtp.helo()  # as aiosmtplib falls back before a send
    if spec.starttls:
        await smtp.starttls()  # the certificate is checked as a send would check it
        await smtp.ehlo()
    if spec.username and not smtp.supports_extension("auth"):
        tls = "after STARTTLS" if spec.starttls else "without STARTTLS"
        where = _where(spec.smtp_host, spec.smtp_port)
        return f"SMTP server {where} offers no AUTH {tls}, but the contact logs in (username)"
    return ""


def _smtp_failure(exc: Exception, spec: EmailSpec) -> str:
    where = _where(spec.smtp_host, spec.smtp_port)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        text = str(exc.message).replace("\n", " ")  # whole: redacted, then cut, with the check
        return f"SMTP server {where} answered {exc.code}: {text}"
    if isinstance(exc, TimeoutError):  # aiosmtplib's own per-command timeouts
        return f"SMTP server {where} did not answer in time"
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return f"SMTP server {where} closed the connection"
    if isinstance(exc, aiosmtplib.SMTPConnectError | OSError):  # refused, unknown host, TLS ...
        return connect_failure_reason(exc, spec.smtp_host, spec.smtp_port)
    if isinstance(exc, aiosmtplib.SMTPException):  # e.g. STARTTLS not offered
        return f"SMTP server {where}: {exc}"
    return f"SMTP server {where}: {type(exc).__name__}: {exc}"


# --- actions -----------------------------------------------------------------------------------


def _action_entry(step: ActionStep, secrets: Secrets, cwd: str) -> _Entry:
    what = f"action in step '{step.name}'"
    problem, params = _resolve(secrets, what, step.action.params, f"step '{step.name}'")
    if problem or params is None:
        return problem or Check(what, False, "its parameters cannot be resolved")
    kind = ACTION_KINDS.get(step.action.kind)
    if kind is None:
        return Check(what, False, f"unknown action kind {step.action.kind!r}")
    try:
        spec = kind.parse(params)
    except Exception as exc:
        return _unusable_params(what, exc)
    if isinstance(spec, HttpActionSpec):
        if not isinstance(spec.url, str):
            return Check(what, False, "http: `url` must be a string")
        if OUTPUT_REFERENCE.search(spec.url):
            return _unchecked(what, spec.url)
        return _url_entry(what, "http", spec.url)
    if isinstance(spec, CommandActionSpec):
        if not spec.argv:
            return Check(what, False, "command: `argv` is empty")
        if OUTPUT_REFERENCE.search(spec.argv[0]) or OUTPUT_REFERENCE.search(spec.cwd or ""):
            return _unchecked(what, f"{spec.argv[0]} {spec.cwd or ''}")
        folder = spec.cwd or cwd
        exe = spec.argv[0]
        look = f"the file system (looking for {exe})"
        return _Endpoint(what, f"command {exe}", look, lambda: asyncio.to_thread(_executable, spec, folder))
    return Check(what, True, f"not checked: no endpoint check for {step.action.kind} actions", checked=False)


def _executable(spec: CommandActionSpec, folder: str) -> str:
    """'' when argv[0] would start: a path (with a /) taken relative to the action's working
    folder, a bare name looked up on PATH (the action's env PATH first), as exec does."""
    exe = spec.argv[0]
    if not exe:
        return "command: argv[0] is empty"
    if not Path(folder).is_dir():
        return f"command: the working folder {folder} does not exist"
    if os.sep in exe or (os.altsep is not None and os.altsep in exe):
        candidate = Path(folder) / exe  # an absolute exe stays itself
        if shutil.which(str(candidate)) is not None:
            return ""
        if candidate.is_dir():
            return f"command: {exe} is a folder, not a program (looked in {folder})"
        if candidate.exists():
            return f"command: {exe} is not executable (chmod +x it)"
        return f"command: {exe} not found" + ("" if Path(exe).is_absolute() else f" in {folder}")
    search = spec.env.get("PATH", os.environ.get("PATH", os.defpath))
    if shutil.which(exe, path=search) is not None:
        return ""
    return f"command: {exe!r} not found on PATH, or not executable there"
