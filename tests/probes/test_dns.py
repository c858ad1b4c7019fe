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

from drill.errors import UsageError
from drill.probes import dns as dns_probe
from drill.probes.base import Observation
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
