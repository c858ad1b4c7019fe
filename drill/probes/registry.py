"""The one list of probe kinds: adding a kind is a new module, its schema fragment and one line here."""

from __future__ import annotations

from typing import Any

from drill.probes import command, dns, http, kv, postgres, redis, tcp
from drill.probes.base import ProbeKind

PROBE_KINDS: dict[str, ProbeKind[Any]] = {
    "http": http.KIND,
    "tcp": tcp.KIND,
    "dns": dns.KIND,
    "command": command.KIND,
    "redis": redis.KIND,
    "postgres": postgres.KIND,
    "kv": kv.KIND,
}
