"""The dns probe: ask one nameserver for one record; healthy when the answer is the expected one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver

from drill.errors import UsageError
from drill.probes.base import Observation, ProbeContext, ProbeKind, fail, ok
from drill.units import human_ms

_NAME_TYPES = frozenset({"CNAME", "NS", "PTR", "MX", "SRV", "DNAME"})


@dataclass(frozen=True, slots=True)
class DnsSpec:
    """Which record to ask which server for. `expect` empty: any answer is healthy; otherwise the
    set of answers must equal it (so a record still listing the old primary is not healthy)."""

    name: str
    type: str = "A"
    nameserver: str = "127.0.0.1"
    port: int = 53
    expect: frozenset[str] = frozenset()


def parse(params: Mapping[str, Any]) -> DnsSpec:
    """Build the spec from resolved, schema-valid params; an unknown record type is a usage error."""
    rtype = str(params.get("type", "A")).upper()
    try:
        dns.rdatatype.from_text(rtype)
    except dns.exception.DNSException as exc:
        raise UsageError(
            f"dns probe: unknown record type {rtype!r}", hint="e.g. A, AAAA, CNAME, TXT"
        ) from exc
    expect = params.get("expect")
    values = [] if expect is None else expect if isinstance(expect, list | tuple) else [expect]
    return DnsSpec(
        name=str(params["name"]),
        type=rtype,
        nameserver=str(params.get("nameserver", "127.0.0.1")),
        port=int(params.get("port", 53)),
        expect=frozenset(_normalise(str(v), rtype) for v in values),
    )


def _normalise(value: str, rtype: str) -> str:
    """Compare names without the trailing dot and case; TXT without its quotes."""
    value = value.strip()
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
    if spec.expect and set(got) != spec.expect:
        wanted = ", ".join(sorted(spec.expect))
        return fail(f"expected {spec.type} {spec.name} = {wanted}, got {', '.join(got) or 'nothing'}")
    return ok(answers=got)


KIND: ProbeKind[DnsSpec] = ProbeKind(
    name="dns",
    parse=parse,
    run=probe_dns,
    summary="ask one nameserver for one record; checks the answer set",
)
