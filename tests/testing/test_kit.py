"""The probe-author kit (drill.testing) itself: it runs a kind as drill's scheduler does.

Against real servers on 127.0.0.1 port 0 for the registered kinds, and with tiny kinds defined
here for what the kit promises about contexts: events recorded, memory kept between calls,
declared resources opened lazily once and closed by aclose.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest

from drill.clock import FakeClock, SystemClock
from drill.errors import UsageError
from drill.evidence.events import CanaryWritten, EventDraft, RpoUnmeasured
from drill.probes.base import Observation, Params, ProbeContext, ProbeKind, ResourceKind, ok
from drill.probes.pool import HTTP_POOL  # what the http and kv kinds declare
from drill.probes.registry import PROBE_KINDS
from drill.testing import FakeContext, finish_probe, probe_kind, run_probe

MS = 1_000_000


# --------------------------------------------------------------------------- real servers
@dataclass
class Server:
    """A loopback TCP server: answers each HTTP request head with 200, or never answers (`mute`)."""

    mute: bool = False
    port: int = 0
    accepted: int = 0
    writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.writers.add(writer)
        try:
            if self.mute:
                while await reader.read(4096):  # read and ignore until the client hangs up
                    pass
                return
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            self.writers.discard(writer)
            writer.close()


@contextlib.asynccontextmanager
async def _serve(server: Server) -> AsyncIterator[Server]:
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        for writer in list(server.writers):
            writer.transport.abort()
        await listener.wait_closed()


@pytest.fixture
async def answering() -> AsyncIterator[Server]:
    async with _serve(Server()) as server:
        yield server


@pytest.fixture
async def mute() -> AsyncIterator[Server]:
    async with _serve(Server(mute=True)) as server:
        yield server


async def test_run_probe_by_kind_name_against_a_real_http_server(answering: Server) -> None:
    obs = await run_probe("http", {"url": f"http://127.0.0.1:{answering.port}/health"}, timeout_ms=1000)
    assert (obs.ok, obs.reason, obs.detail["status"]) == (True, "", 200), obs.reason
    assert 0 < obs.latency_us < 1_000_000  # measured by the kit, as the scheduler measures it
    assert answering.accepted == 1


async def test_run_probe_by_kind_name_against_a_real_tcp_server(answering: Server) -> None:
    obs = await run_probe("tcp", {"host": "127.0.0.1", "port": answering.port}, timeout_ms=1000)
    assert (obs.ok, obs.reason) == (True, "")
    assert answering.accepted == 1


async def test_a_server_that_accepts_and_never_answers_fails_at_the_deadline(mute: Server) -> None:
    clock = SystemClock()
    t0 = clock.monotonic_ns()
    obs = await run_probe("http", {"url": f"http://127.0.0.1:{mute.port}/"}, timeout_ms=300)
    elapsed_ms = (clock.monotonic_ns() - t0) / MS
    assert (obs.ok, obs.reason, obs.transient) == (False, "timed out after 300 ms", True)
    assert 300_000 <= obs.latency_us < 500_000  # about the deadline, not a guess
    assert 300 <= elapsed_ms < 500
    assert mute.accepted == 1  # it really connected: the wait was for the answer


def test_an_unknown_kind_name_raises_key_error_naming_the_known_kinds() -> None:
    with pytest.raises(KeyError) as caught:
        probe_kind("htp")
    message = caught.value.args[0]
    assert message == f"unknown probe kind 'htp'; known: {', '.join(sorted(PROBE_KINDS))}"
    assert "http" in message and "smtp" in message


async def test_run_probe_with_an_unknown_kind_raises_before_running() -> None:
    with pytest.raises(KeyError, match="unknown probe kind 'nope'; known: command, "):
        await run_probe("nope", {})


def test_probe_kind_gives_back_a_kind_object_unchanged() -> None:
    assert probe_kind(PROBE_KINDS["tcp"]) is PROBE_KINDS["tcp"]
    assert probe_kind("tcp") is PROBE_KINDS["tcp"]


async def test_bad_params_raise_the_kinds_own_usage_error() -> None:
    with pytest.raises(UsageError) as smtp_error:
        await run_probe("smtp", {"port": 25})
    assert smtp_error.value.message == "smtp probe: host must be a non-empty string, got None"
    with pytest.raises(UsageError, match="body_regex"):
        await run_probe("http", {"url": "http://127.0.0.1:1/", "body_regex": "("})


# --------------------------------------------------------------------------- tiny kinds
async def _count(spec: Params, ctx: ProbeContext) -> Observation:
    """Counts its calls in ctx.memory and journals each as a canary write."""
    seq = int(ctx.memory.get("seq", 0)) + 1
    ctx.memory["seq"] = seq
    ctx.emit(EventDraft(CanaryWritten(ctx.probe, seq, f"t{seq}"), ctx.monotonic_ns(), ctx.asset))
    return ok(seq=seq)


async def _report_last(spec: Params, ctx: ProbeContext) -> None:
    last = int(ctx.memory.get("seq", 0))
    ctx.emit(
        EventDraft(RpoUnmeasured(ctx.probe, "nothing to read back", last), ctx.monotonic_ns(), ctx.asset)
    )


COUNTER: ProbeKind[Params] = ProbeKind("counter", dict, _count, "counts its calls", finish=_report_last)


async def test_fake_context_records_events_and_keeps_memory_across_calls() -> None:
    clock = FakeClock()
    async with FakeContext("orders", "canary", clock=clock) as ctx:
        seqs = []
        for _ in range(3):
            obs = await run_probe(COUNTER, {}, ctx=ctx)
            seqs.append(obs.detail["seq"])
            clock.advance(100 * MS)
        await finish_probe(COUNTER, {}, ctx)
    assert seqs == [1, 2, 3]
    assert ctx.memory == {"seq": 3}
    assert ctx.events == [
        EventDraft(CanaryWritten("canary", 1, "t1"), 1_000 * MS, "orders"),
        EventDraft(CanaryWritten("canary", 2, "t2"), 1_100 * MS, "orders"),
        EventDraft(CanaryWritten("canary", 3, "t3"), 1_200 * MS, "orders"),
        EventDraft(RpoUnmeasured("canary", "nothing to read back", 3), 1_300 * MS, "orders"),
    ]


async def test_without_a_context_each_call_starts_afresh() -> None:
    first = await run_probe(COUNTER, {})
    second = await run_probe(COUNTER, {})
    assert (first.detail["seq"], second.detail["seq"]) == (1, 1)


async def test_finish_probe_of_a_kind_without_finish_does_nothing() -> None:
    kind: ProbeKind[Params] = ProbeKind("plain", dict, _count, "no finish hook")
    async with FakeContext() as ctx:
        await finish_probe(kind, {}, ctx)
    assert (ctx.events, ctx.memory) == ([], {})


async def test_latency_is_measured_on_the_contexts_clock() -> None:
    clock = FakeClock()

    async def slow(spec: Params, ctx: ProbeContext) -> Observation:
        clock.advance(250 * MS)
        return ok()

    async with FakeContext(clock=clock) as ctx:
        obs = await run_probe(ProbeKind("slow", dict, slow, "takes 250 ms"), {}, ctx=ctx)
    assert (obs.ok, obs.latency_us) == (True, 250_000)


async def test_a_probe_that_raises_is_a_failed_observation_naming_the_bug() -> None:
    async def broken(spec: Params, ctx: ProbeContext) -> Observation:
        raise RuntimeError("oops")

    obs = await run_probe(ProbeKind("broken", dict, broken, "raises"), {})
    assert obs.ok is False
    assert obs.reason.startswith("bug: probe kind 'broken' raised RuntimeError: oops")


async def test_the_own_context_gets_the_deadline_as_its_timeout() -> None:
    async def budget(spec: Params, ctx: ProbeContext) -> Observation:
        return ok(timeout_s=ctx.timeout_s)

    obs = await run_probe(ProbeKind("budget", dict, budget, "reports its budget"), {}, timeout_ms=300)
    assert obs.detail["timeout_s"] == 0.3


# --------------------------------------------------------------------------- resources
@dataclass
class Tally:
    """A shared resource that knows whether it was closed."""

    specs: tuple[object, ...]
    closed: int = 0

    async def aclose(self) -> None:
        self.closed += 1


@dataclass
class Opener:
    opened: list[Tally] = field(default_factory=list)

    def __call__(self, specs: Sequence[object]) -> Tally:
        tally = Tally(tuple(specs))
        self.opened.append(tally)
        return tally


def _kind_with(resource: ResourceKind[Tally]) -> ProbeKind[Params]:
    async def use(spec: Params, ctx: ProbeContext) -> Observation:
        return ok(resource=id(ctx.resource(resource)))

    return ProbeKind("user", dict, use, "uses a shared resource", resources=(resource,))


async def test_resources_open_lazily_once_and_close_on_aclose() -> None:
    opener = Opener()
    kind = _kind_with(ResourceKind("tally", opener))
    ctx = FakeContext()
    assert opener.opened == []  # nothing opens before a probe asks
    ids = {(await run_probe(kind, {}, ctx=ctx)).detail["resource"] for _ in range(3)}
    [tally] = opener.opened
    assert ids == {id(tally)} and tally.closed == 0
    await ctx.aclose()
    assert tally.closed == 1
    await ctx.aclose()
    assert tally.closed == 1  # closed once, however often the context is closed


async def test_a_context_manager_closes_its_resources_even_when_the_test_fails() -> None:
    opener = Opener()
    kind = _kind_with(ResourceKind("tally", opener))
    with pytest.raises(AssertionError):
        async with FakeContext() as ctx:
            assert (await run_probe(kind, {}, ctx=ctx)).ok
            raise AssertionError("the test failed here")
    assert [t.closed for t in opener.opened] == [1]


async def test_run_probe_without_a_context_closes_what_it_opened() -> None:
    opener = Opener()
    kind = _kind_with(ResourceKind("tally", opener))
    assert (await run_probe(kind, {})).ok
    [tally] = opener.opened
    assert tally.closed == 1


async def test_the_http_pool_of_a_fake_context_is_closed_with_it(answering: Server) -> None:
    ctx = FakeContext()
    assert (await run_probe("http", {"url": f"http://127.0.0.1:{answering.port}/"}, ctx=ctx)).ok
    pool = ctx.resource(HTTP_POOL)
    assert pool.size >= 1
    await ctx.aclose()
    with pytest.raises(RuntimeError, match="used after aclose"):
        pool.client()
