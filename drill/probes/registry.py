"""The one list of probe kinds: adding a kind is a new module, its schema fragment and its name here."""

from __future__ import annotations

from typing import Any

from drill.probes import command, dns, http, journey, kv, postgres, redis, smtp, tcp
from drill.probes.base import ProbeKind

# Keyed by each kind's own name, so a kind cannot be registered under another one.
PROBE_KINDS: dict[str, ProbeKind[Any]] = {
    kind.name: kind
    for kind in (
        http.KIND,
        tcp.KIND,
        dns.KIND,
        command.KIND,
        redis.KIND,
        postgres.KIND,
        kv.KIND,
        smtp.KIND,
        journey.KIND,
    )
}
