"""The demo lab's failure injection really happens, and replication lag really loses writes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from drill.errors import DrillError
from drill.lab import Lab, LabConfig
from drill.lab.daemon import check_ports_free
from drill.lab.lab import PORTS, HttpServer, Request, Response, lab_urls


@pytest.fixture
async def lab() -> AsyncIterator[Lab]:
    async with Lab.start(LabConfig(kv_lag_ms=300, slow_ms=400, ack_delay_ms=50)) as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=2.0) as c:
        yield c


async def control(client: httpx.AsyncClient, lab: Lab, path: str) -> dict[str, object]:
    resp = await client.post(f"{lab.urls['control']}/control/{path}")
    assert resp.status_code == 200, resp.text
    data: dict[str, object] = resp.json()
    return data


async def test_every_server_listens_on_loopback_with_its_own_port(lab: Lab) -> None:
    urls = lab.urls
    assert all(u.startswith("http://127.0.0.1:") for u in urls.values())
    assert len(set(urls.values())) == len(urls)
    assert lab.env()["DRILL_LAB_FRONT_URL"] == f"{urls['front']}/health"


async def test_crash_refuses_connections_and_recovery_reuses_the_port(
    lab: Lab, client: httpx.AsyncClient
) -> None:
    url = lab.env()["DRILL_LAB_PRIMARY_URL"]
    assert (await client.get(url)).json()["service"] == "primary"
    await control(client, lab, "primary/crash")
    with pytest.raises(httpx.ConnectError):
        await client.get(url)
    await control(client, lab, "primary/ok")
    assert (await client.get(url)).status_code == 200


async def test_hang_never_answers_until_recovered(lab: Lab, client: httpx.AsyncClient) -> None:
    url = lab.env()["DRILL_LAB_SECONDARY_URL"]
    await control(client, lab, "secondary/hang")
    pending = asyncio.ensure_future(client.get(url))
    done, _ = await asyncio.wait({pending}, timeout=0.3)
    assert not done  # still no answer after 300 ms
    await control(client, lab, "secondary/ok")
    assert (await pending).status_code == 503  # the held request is released, not answered as ok
    assert (await client.get(url)).status_code == 200


async def test_slow_answers_late(lab: Lab, client: httpx.AsyncClient) -> None:
    url = lab.env()["DRILL_LAB_REPORTS_URL"]
    await control(client, lab, "reports/slow")
    started = time.monotonic()
    assert (await client.get(url)).status_code == 200
    assert time.monotonic() - started >= 0.4


async def test_partial_outage_fails_every_second_request(lab: Lab, client: httpx.AsyncClient) -> None:
    url = lab.env()["DRILL_LAB_PRIMARY_URL"]
    await control(client, lab, "primary/partial")
    statuses = [(await client.get(url)).status_code for _ in range(6)]
    assert sorted(statuses) == [200, 200, 200, 503, 503, 503]


async def test_front_switches_sides_and_reports_a_dead_upstream(lab: Lab, client: httpx.AsyncClient) -> None:
    front = lab.env()["DRILL_LAB_FRONT_URL"]
    assert (await client.get(front)).headers["x-served-by"] == "primary"
    await control(client, lab, "primary/crash")
    resp = await client.get(front)
    assert resp.status_code == 502
    assert "primary unreachable" in resp.json()["error"]
    await control(client, lab, "failover")
    assert (await client.get(front)).headers["x-served-by"] == "secondary"
    await control(client, lab, "failback")
    assert (await client.get(front)).status_code == 502


async def test_failover_loses_exactly_the_writes_inside_the_lag(lab: Lab, client: httpx.AsyncClient) -> None:
    kv = lab.urls["kv"]
    for i in range(3):
        assert (await client.put(f"{kv}/kv/old{i}", content=b"x")).status_code == 200
    await asyncio.sleep(0.4)  # older than the 300 ms lag: replicated
    for i in range(4):
        assert (await client.put(f"{kv}/kv/new{i}", content=b"x")).status_code == 200
    await control(client, lab, "kv/crash")
    assert (await client.get(f"{kv}/kv/old0")).status_code == 503
    await asyncio.sleep(0.4)  # the dead master's backlog never arrives, however long we wait
    answer = await control(client, lab, "kv/failover")
    assert answer["lost"] == 4
    items = (await client.get(f"{kv}/kv", params={"prefix": ""})).json()["items"]
    assert sorted(items) == ["old0", "old1", "old2"]


async def test_pager_hook_acknowledges_through_the_ack_url(lab: Lab, client: httpx.AsyncClient) -> None:
    seen: list[Request] = []
    acked = asyncio.Event()

    async def ack_desk(request: Request) -> Response:
        seen.append(request)
        acked.set()
        return Response.json(200, {"ok": True})

    desk = HttpServer(ack_desk)
    await desk.start()
    try:
        page = {"action": "trigger", "ack_url": f"{desk.url}/ack/tok123", "page_id": "p1"}
        resp = await client.post(lab.env()["DRILL_LAB_PAGER_URL"], json=page)
        assert resp.status_code == 200
        await asyncio.wait_for(acked.wait(), 2)
    finally:
        await desk.stop()
    assert (seen[0].method, seen[0].path, seen[0].body) == ("POST", "/ack/tok123", b"by=lab-oncall")
    assert lab.acks == [200]


async def test_health_names_the_lab_and_its_pid(lab: Lab, client: httpx.AsyncClient) -> None:
    resp = await client.get(f"{lab.urls['control']}/health")
    assert resp.status_code == 200
    assert resp.json() == {"lab": "drill", "pid": os.getpid(), "urls": lab.urls}


async def test_restore_repairs_the_site_but_leaves_the_failover_in_place(
    lab: Lab, client: httpx.AsyncClient
) -> None:
    await control(client, lab, "disaster")
    await control(client, lab, "failover")
    answer = await control(client, lab, "restore")
    assert answer["state"] == {
        "modes": {"primary": "ok", "secondary": "ok", "reports": "ok"},
        "active": "secondary",  # failing back is a step of its own
        "kv": {"master": "a", "down": True, "lost": 0},
        "pages": 0,
    }
    assert (await client.get(lab.env()["DRILL_LAB_PRIMARY_URL"])).status_code == 200


async def test_a_port_base_gives_the_documented_fixed_layout() -> None:
    base = 0
    for candidate in range(31000, 39000, 97):  # a run of free ports: the layout is fixed, not port 0
        with contextlib.suppress(DrillError):
            check_ports_free(candidate)
            base = candidate
            break
    assert base, "no free run of ports"
    events: list[str] = []
    async with Lab.start(LabConfig(port_base=base), log=lambda event, _: events.append(event)) as running:
        assert running.urls == lab_urls(base)
        assert running.urls["control"] == f"http://127.0.0.1:{base}"
        assert running.urls["kv"] == f"http://127.0.0.1:{base + PORTS['kv']}"
        async with httpx.AsyncClient(trust_env=False, timeout=2.0) as c:
            await c.post(f"{running.urls['control']}/control/primary/crash")
            await c.post(f"{running.urls['control']}/control/primary/ok")  # the same fixed port again
            assert (await c.get(f"{running.urls['primary']}/health")).status_code == 200
    assert events == ["lab.control", "lab.control"]
