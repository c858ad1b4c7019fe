"""Contact chains inside a real run: pages on the declared disaster, escalation, time-to-ack in results."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import httpx

from drill.playbook.model import Contact, ContactChain, MarkStep, PauseStep
from drill.run.runner import run_drill
from drill.run.session import RunOptions
from tests.notify.conftest import Received, Receiver
from tests.run.helpers import one_asset_playbook
from tests.servers import ToggleServer

BOT_DELAY_S = 0.2


async def test_run_pages_escalates_and_measures_time_to_ack(receiver: Receiver, tmp_path: Path) -> None:
    acks: list[asyncio.Task[httpx.Response]] = []
    client = httpx.AsyncClient(trust_env=False)  # made before the drill: building one costs ~150 ms

    async def ack_later(url: str) -> httpx.Response:
        await asyncio.sleep(BOT_DELAY_S)  # the bot's reaction time is the ground truth here
        return await client.post(url, data={"by": "ben-bot"})

    def on_request(got: Received) -> None:
        if got.path == "/ben":
            acks.append(asyncio.get_running_loop().create_task(ack_later(got.json()["ack_url"])))

    receiver.on_request = on_request
    service = ToggleServer()
    await service.start()
    chain = ContactChain(
        "oncall",
        (
            Contact("ana", "webhook", 300, {"url": receiver.url + "/ana"}),
            Contact("ben", "webhook", 1000, {"url": receiver.url + "/ben"}),
        ),
        respond_within_ms=2000,
    )
    playbook = one_asset_playbook(
        "http", {"url": service.url}, (MarkStep("declare", "disaster"), PauseStep("hold", 100))
    )
    asset = dataclasses.replace(playbook.assets[0], contact_chain="oncall")
    document = {**playbook.document, "contacts": {"chains": {"oncall": {"respond_within": "2s"}}}}
    document["assets"] = [{**document["assets"][0], "contact_chain": "oncall"}]
    playbook = dataclasses.replace(playbook, chains=(chain,), assets=(asset,), document=document)
    try:
        outcome = await run_drill(playbook, RunOptions(runs_dir=tmp_path))
    finally:
        await service.stop()
        responses = await asyncio.gather(*acks)
        await client.aclose()

    assert [r.status_code for r in responses] == [200]
    pages = {p.contact: p for p in outcome.results.pages}
    assert pages["ana"].ack_ms is None and pages["ana"].ok
    ben_ack_ms = pages["ben"].ack_ms
    assert ben_ack_ms is not None and abs(ben_ack_ms - BOT_DELAY_S * 1000) <= 100
    ana_sent, ben_sent = (r.at_ns for r in (receiver.on("/ana")[0], receiver.on("/ben")[0]))
    assert abs((ben_sent - ana_sent) / 1e6 - 300) <= 50  # escalated when ack_within ran out
    chain_result = outcome.results.chains[0]
    first_ack_ms = chain_result.first_ack_ms
    assert chain_result.met is True and first_ack_ms is not None and 450 <= first_ack_ms <= 650
    ack = outcome.results.assets[0].ack
    assert ack is not None and ack.met is True
    assert not (outcome.run_dir / "ack.url").exists()
