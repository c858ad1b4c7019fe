"""The dns probe against a small real UDP DNS server on 127.0.0.1 whose answer the test switches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from jsonschema import Draft202012Validator

from drill.clock import monotonic_ns
from drill.errors import UsageError
from drill.probes import dns as dns_probe
from drill.probes.base import Observation
from drill.resources import load_schema
from drill.testing import FakeContext, run_probe


@dataclass
class Zone(asyncio.DatagramProtocol):
    """Answers from `records` ((name, type) -> values); silent while `mute` is set."""

    records: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    mute: bool = False
    queries: int = 0
    transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.queries += 1
        if self.mute or self.transport is None:
            return
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rtype = dns.rdatatype.to_text(question.rdtype)
        if not any(n == name for n, _ in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif values := self.records.get((name, rtype)):
            response.answer.append(dns.rrset.from_text_list(question.name, 5, "IN", rtype, values))
        self.transport.sendto(response.to_wire(), addr)


@pytest.fixture
async def zone() -> AsyncIterator[tuple[Zone, int]]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(Zone, local_addr=("127.0.0.1", 0))
    yield protocol, transport.get_extra_info("sockname")[1]
    transport.close()


async def _probe(ctx: FakeContext, port: int, **params: object) -> Observation:
    params = {"nameserver": "127.0.0.1", "port": port, **params}
    return await run_probe(dns_probe.KIND, params, ctx=ctx, timeout_ms=round(ctx.timeout_s * 1000))


async def test_answer_switch_is_seen(zone: tuple[Zone, int], probe_ctx: FakeContext) -> None:
    server, port = zone
    server.records[("db.drill.test", "A")] = ["10.0.0.1"]
    first = await _probe(probe_ctx, port, name="db.drill.test", expect="10.0.0.1")
    assert (first.ok, first.detail["answers"]) == (True, ["10.0.0.1"])
    server.records[("db.drill.test", "A")] = ["10.0.0.2"]  # the failover moves the record
    moved = await _probe(probe_ctx, port, name="db.drill.test", expect="10.0.0.1")
    assert (moved.ok, moved.reason) == (False, "expected A db.drill.test = 10.0.0.1, got 10.0.0.2")
    assert (await _probe(probe_ctx, port, name="db.drill.test", expect=["10.0.0.2"])).ok


async def test_expect_is_the_whole_answer_set(zone: tuple[Zone, int], probe_ctx: FakeContext) -> None:
    server, port = zone
    server.records[("db.drill.test", "A")] = ["10.0.0.1", "10.0.0.2"]
    half = await _probe(probe_ctx, port, name="db.drill.test", expect="10.0.0.2")
    assert half.reason == "expected A db.drill.test = 10.0.0.2, got 10.0.0.1, 10.0.0.2"
    assert (await _probe(probe_ctx, port, name="db.drill.test", expect=["10.0.0.2", "10.0.0.1"])).ok
    assert (await _probe(probe_ctx, port, name="db.drill.test")).ok  # no expect: any answer


async def test_names_compare_without_trailing_dot_or_case(
    zone: tuple[Zone, int], probe_ctx: FakeContext
) -> None:
    server, port = zone
    server.records[("www.drill.test", "CNAME")] = ["primary.drill.test."]
    obs = await _probe(probe_ctx, port, name="www.drill.test", type="cname", expect="Primary.Drill.Test")
    assert obs.ok, obs.reason


async def test_nxdomain_and_no_answer(zone: tuple[Zone, int], probe_ctx: FakeContext) -> None:
    server, port = zone
    server.records[("db.drill.test", "A")] = ["10.0.0.1"]
    gone = await _probe(probe_ctx, port, name="old.drill.test")
    assert gone.reason == f"old.drill.test does not exist (NXDOMAIN from 127.0.0.1:{port})"
    empty = await _probe(probe_ctx, port, name="db.drill.test", type="AAAA")
    assert empty.reason == f"no AAAA record for db.drill.test at 127.0.0.1:{port}"


async def test_a_silent_server_fails_at_the_deadline(zone: tuple[Zone, int]) -> None:
    server, port = zone
    server.mute = True
    params = {"name": "db.drill.test", "nameserver": "127.0.0.1", "port": port}
    obs = await run_probe(dns_probe.KIND, params, timeout_ms=300)
    assert (obs.ok, obs.reason) == (False, "timed out after 300 ms")
    assert server.queries >= 1


def test_unknown_record_type_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown record type 'BOGUS'"):
        dns_probe.parse({"name": "x", "type": "bogus"})


PRIMARY, DR = "10.0.0.1", "10.9.0.1"


@dataclass(frozen=True, slots=True)
class Seen:
    started_ns: int
    finished_ns: int
    obs: Observation


async def _through_a_switch(
    zone: tuple[Zone, int], ctx: FakeContext, params: dict[str, object], after: list[str]
) -> tuple[int, list[Seen]]:
    """Probe search.internal back to back while a concurrent task moves its A record from PRIMARY to
    `after` once three observations are in; returns the switch instant (ground truth) and every
    observation, stopping after three that started after the switch."""
    server, port = zone
    server.records[("search.internal", "A")] = [PRIMARY]
    seen: list[Seen] = []
    three_in = asyncio.Event()
    switched: list[int] = []

    async def switch() -> None:
        await three_in.wait()
        # one statement after the other, no await in between: the zone answers the old or the new record
        switched.append(monotonic_ns())
        server.records[("search.internal", "A")] = after

    async with asyncio.timeout(10), asyncio.TaskGroup() as group:
        group.create_task(switch())
        while not switched or sum(s.started_ns > switched[0] for s in seen) < 3:
            started = monotonic_ns()
            obs = await _probe(ctx, port, name="search.internal", **params)
            seen.append(Seen(started, monotonic_ns(), obs))
            if len(seen) == 3:
                three_in.set()
    return switched[0], seen


@pytest.mark.parametrize(
    ("params", "down_reason"),
    [
        ({"expect_any_of": [DR]}, f"search.internal answered {PRIMARY}, not one of {DR}"),
        ({"reject_any_of": [PRIMARY]}, f"search.internal answered {PRIMARY}, expected none of {PRIMARY}"),
        (
            {"expect_any_of": [DR, "10.9.0.2"], "reject_any_of": [PRIMARY]},
            f"search.internal answered {PRIMARY}, expected none of {PRIMARY}",
        ),
    ],
    ids=["expect_any_of", "reject_any_of", "both"],
)
async def test_failover_is_seen_when_the_answer_moves_to_the_dr_address(
    zone: tuple[Zone, int], probe_ctx: FakeContext, params: dict[str, object], down_reason: str
) -> None:
    t_switch, seen = await _through_a_switch(zone, probe_ctx, params, [DR])
    before = [s for s in seen if s.finished_ns < t_switch]
    assert len(before) >= 3
    assert {(s.obs.ok, s.obs.reason) for s in before} == {(False, down_reason)}
    first_ok = next(s for s in seen if s.obs.ok)
    assert first_ok.finished_ns > t_switch  # never up before the record moved
    # up from the first observation that started after the move, and staying up
    assert all(s.obs.ok for s in seen if s.started_ns > t_switch)
    assert first_ok.started_ns <= min(s.started_ns for s in seen if s.started_ns > t_switch)
    assert first_ok.obs.detail["answers"] == [DR]
    print(f"dns: up {(first_ok.finished_ns - t_switch) / 1e6:.1f} ms after the record moved")


async def test_a_transition_answer_with_both_addresses(
    zone: tuple[Zone, int], probe_ctx: FakeContext
) -> None:
    """Both records during the move: one of the expected is enough, unless the old one is rejected."""
    server, port = zone
    server.records[("search.internal", "A")] = [PRIMARY, DR]
    assert (await _probe(probe_ctx, port, name="search.internal", expect_any_of=[DR])).ok
    both = await _probe(probe_ctx, port, name="search.internal", expect_any_of=[DR], reject_any_of=[PRIMARY])
    assert (both.ok, both.reason) == (
        False,
        f"search.internal answered {PRIMARY} and {DR}, expected none of {PRIMARY}",
    )
    assert both.detail["answers"] == [PRIMARY, DR]
    server.records[("search.internal", "A")] = ["10.0.0.1", "10.0.0.2"]
    neither = await _probe(probe_ctx, port, name="search.internal", expect_any_of=[DR, "10.9.0.2"])
    assert neither.reason == (
        "search.internal answered 10.0.0.1 and 10.0.0.2, none of them one of 10.9.0.1, 10.9.0.2"
    )


async def test_expect_any_of_keeps_expect_and_the_other_checks_working(
    zone: tuple[Zone, int], probe_ctx: FakeContext
) -> None:
    server, port = zone
    server.records[("search.internal", "A")] = [DR, "10.9.0.2"]
    # all expectations given must hold: one of expect_any_of, and the whole set for expect
    mixed = await _probe(probe_ctx, port, name="search.internal", expect=[DR], expect_any_of=[DR])
    assert mixed.reason == f"expected A search.internal = {DR}, got {DR}, 10.9.0.2"
    gone = await _probe(probe_ctx, port, name="old.internal", expect_any_of=[DR])
    assert gone.reason == f"old.internal does not exist (NXDOMAIN from 127.0.0.1:{port})"


async def test_addresses_compare_in_canonical_form(zone: tuple[Zone, int], probe_ctx: FakeContext) -> None:
    server, port = zone
    server.records[("search.internal", "AAAA")] = ["2001:db8::9"]
    params: dict[str, object] = {"name": "search.internal", "type": "AAAA"}
    assert (await _probe(probe_ctx, port, **params, expect_any_of=["2001:0DB8:0:0::9"])).ok
    old = await _probe(probe_ctx, port, **params, reject_any_of=["2001:db8:0::9"])
    assert old.reason == "search.internal answered 2001:db8::9, expected none of 2001:db8::9"


def test_schema_takes_lists_of_addresses() -> None:
    validator = Draft202012Validator(load_schema("probes/dns.schema.json"))
    assert validator.is_valid({"name": "s", "expect_any_of": [DR], "reject_any_of": [PRIMARY]})
    assert validator.is_valid({"name": "s", "expect": PRIMARY, "expect_any_of": [PRIMARY, DR]})
    assert not validator.is_valid({"name": "s", "expect_any_of": []})
    assert not validator.is_valid({"name": "s", "reject_any_of": PRIMARY})
    assert not validator.is_valid({"name": "s", "expect_one_of": [DR]})
