"""`drill agent --site NAME --broker URL`: a site's vantage point (see drill/run/sites/agent.py)."""

from __future__ import annotations

import asyncio
import signal
import socket

import click

from drill.log import configure_logging
from drill.run.sites.agent import Agent


@click.command("agent")
@click.option(
    "--site", required=True, help="The site this agent probes from (a name under the playbook's sites)."
)
@click.option(
    "--broker",
    envvar="DRILL_BROKER",
    required=True,
    help="NATS URL (nats://HOST:PORT) of the broker; the agent connects out to it. Default: $DRILL_BROKER.",
)
@click.option("--name", default="", help="This agent's name in the evidence (default: the host name).")
def agent(site: str, broker: str, name: str) -> None:
    """Run the probes drill run assigns to SITE until stopped (Ctrl-C or SIGTERM); publish each
    observation to the broker. Secrets in the probes (${env:...}) come from this agent's own
    environment."""
    configure_logging()
    asyncio.run(_serve(Agent(site, broker, name or socket.gethostname())))


async def _serve(agent: Agent) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await agent.run(stop)
