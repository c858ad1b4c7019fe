"""The dns probe: ask one nameserver for one record; healthy when the answer is the expected one.

Three expectations; every one given must hold:
- `expect`: the answer set equals these records (a record still listing the old primary is not healthy);
- `expect_any_of`: at least one answer record is one of these ("the answer moved to the DR address");
- `reject_any_of`: no answer record is one of these ("the name no longer points at the dead primary").
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver

from drill.errors import UsageError
from drill.probes.base import Observation, ProbeContext, ProbeKind, check_port, check_text, fail, ok
from drill.units import human_ms

_NAME_TYPES = frozenset({"CNAME", "NS", "PTR", "MX", "SRV", "DNAME"})


@dataclass(frozen=True, slots=True)
class DnsSpec:
    """Which record to ask which server for, and what answer is healthy: `expect` (non-empty) the
    whole answer set; `expect_any_of` (non-empty) at least one record of it; `reject_any_of` none of
    it. All empty: any answer is healthy."""

    name: str
    type: str = "A"
    nameserver: str = "127.0.0.1"
    port: int = 53
    expect: frozenset[str] = frozenset()
    expect_any_of: frozenset[str] = frozenset()
    reject_any_of: frozenset[str] = frozenset()


def parse(params: Mapping[str, Any]) -> DnsSpec:
    """Build the spec from resolved, schema-valid params; an unknown record type is a usage error."""
    rtype = str(params.get("type", "A")).upper()
    try:
        dns.rdatatype.from_text(rtype)
    except dns.exception.DNSException as exc:
        raise UsageError(
            f"dns probe: unknown record type {rtype!r}", hint="e.g. A, AAAA, CNAME, TXT"
        ) from exc
    return DnsSpec(
        name=check_text("dns", "name", params["name"]),
        type=rtype,
        nameserver=check_text("dns", "nameserver", params.get("nameserver", "127.0.0.1")),
        port=check_port("dns", "port", params.get("port", 53)),
        expect=_records(params.get("expect"), rtype),
        expect_any_of=_records(params.get("expect_any_of"), rtype),
        reject_any_of=_records(params.get("reject_any_of"), rtype),
    )


def _records(value: object, rtype: str) -> frozenset[str]:
    """A parameter given as one record or a list of records, normalised for comparison."""
    values: Iterable[object] = () if value is None else value if isinstance(value, list | tuple) else [value]
    return frozenset(_normalise(str(v), rtype) for v in values)


def _normalise(value: str, rtype: str) -> str:
    """Compare names without the trailing dot and case; addresses in their canonical spelling
    (`2001:db8::1`); TXT without its quotes."""
    value = value.strip()
    if rtype in ("A", "AAAA"):
        try:
            return ipaddress.ip_address(value).compressed
        except ValueError:
            return value
    if rtype in _NAME_TYPES or rtype == "MX":
        return value.lower().rstrip(".")
    if rtype == "TXT" and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


async def probe_dns(spec: DnsSpec, ctx: ProbeContext) -> Observation:
    """Resolve spec.name/spec.type at spec.nameserver:spec.port (no cache, no search list)."""
    server = f"{spec.nameserver}:{spec.port}"
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [spec.nameserver]
    resolver.port = spec.port
    resolver.cache = None
    # A little beyond the scheduler's deadline, which stays the one that decides.
    resolver.lifetime = ctx.timeout_s + 0.5
    resolver.timeout = ctx.timeout_s + 0.5
    try:
        answer = await resolver.resolve(spec.name, spec.type, search=False)
    except dns.resolver.NXDOMAIN:
        return fail(f"{spec.name} does not exist (NXDOMAIN from {server})")
    except dns.resolver.NoAnswer:
        return fail(f"no {spec.type} record for {spec.name} at {server}")
    except dns.resolver.NoNameservers as exc:
        return fail(f"{server} could not answer for {spec.name} {spec.type}: {exc}", transient=True)
    except dns.exception.Timeout:
        return fail(
            f"no answer from {server} within {human_ms(round(resolver.lifetime * 1000))}", transient=True
        )
    except (dns.exception.DNSException, OSError, ValueError) as exc:
        return fail(f"query to {server} for {spec.name} {spec.type} failed: {exc}", transient=True)
    got = sorted(_normalise(rdata.to_text(), spec.type) for rdata in answer)
    return _judge(spec, got)


def _judge(spec: DnsSpec, got: list[str]) -> Observation:
    """Healthy or not, by the spec's expectations; a reason says what was answered and expected."""
    answered = _listing(got) or "nothing"
    if set(got) & spec.reject_any_of:
        return fail(
            f"{spec.name} answered {answered}, expected none of {', '.join(sorted(spec.reject_any_of))}",
            answers=got,
        )
    if spec.expect_any_of and not set(got) & spec.expect_any_of:
        them = "none of them" if len(got) > 1 else "not"
        return fail(
            f"{spec.name} answered {answered}, {them} one of {', '.join(sorted(spec.expect_any_of))}",
            answers=got,
        )
    if spec.expect and set(got) != spec.expect:
        wanted = ", ".join(sorted(spec.expect))
        return fail(
            f"expected {spec.type} {spec.name} = {wanted}, got {', '.join(got) or 'nothing'}", answers=got
        )
    return ok(answers=got)


def _listing(items: list[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    return " and ".join(filter(None, [", ".join(items[:-1]), *items[-1:]]))


KIND: ProbeKind[DnsSpec] = ProbeKind(
    name="dns",
    parse=parse,
    run=probe_dns,
    summary="ask one nameserver for one record; checks the answer set, or that it moved to/away from addresses",
)
