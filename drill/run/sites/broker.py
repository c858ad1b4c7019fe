"""The NATS JetStream connection both sides use: its streams, and publishing that survives a
broker restart (retried under the same message id, so the stream keeps one copy)."""

from __future__ import annotations

import asyncio

import nats
from nats.aio.client import Client
from nats.errors import ConnectionClosedError, NoServersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, NoStreamResponseError, NotFoundError, ServiceUnavailableError

from drill.errors import UsageError
from drill.log import get_logger
from drill.run.sites.wire import (
    DEDUPE_WINDOW_S,
    OBSERVATIONS_STREAM,
    OBSERVATIONS_SUBJECTS,
    ORDERS_STREAM,
    ORDERS_SUBJECTS,
)

log = get_logger("drill.broker")
RETRY_WAIT_S = 0.2
PUBLISH_TIMEOUT_S = 2.0
# what a publish meets while the broker restarts or the network drops: retried, never fatal
TRANSIENT = (
    NatsTimeout,
    asyncio.TimeoutError,
    ConnectionClosedError,
    NoStreamResponseError,
    ServiceUnavailableError,
    APIError,
)


CONNECT_WITHIN_S = 5.0


async def connect(url: str, name: str) -> Client:
    """Connect to the broker within CONNECT_WITHIN_S, then reconnect for ever after a loss (the
    caller decides when to give up). nats-py retries a first connection without end when
    reconnecting is allowed, so the first one is bounded here."""
    try:
        async with asyncio.timeout(CONNECT_WITHIN_S):
            return await nats.connect(
                url,
                name=name,
                connect_timeout=2,
                reconnect_time_wait=0.25,
                max_reconnect_attempts=-1,
                allow_reconnect=True,
                error_cb=_connection_trouble,
            )
    except (TimeoutError, NoServersError, OSError, NatsTimeout):
        raise UsageError(
            f"cannot reach the broker at {url} within {CONNECT_WITHIN_S:g} s",
            hint="is nats-server running there with JetStream (-js)?",
        ) from None


async def _connection_trouble(exc: Exception) -> None:
    """nats-py's own default prints a traceback for every failed reconnect: one line instead."""
    log.warning("broker.connection", error=f"{type(exc).__name__}: {exc}")


async def ensure_streams(js: JetStreamContext) -> None:
    """The two streams, on disk (a restarted broker still holds them); created when missing."""
    for name, subjects, per_subject in (
        (ORDERS_STREAM, ORDERS_SUBJECTS, 1),  # a site's latest order is the one that counts
        (OBSERVATIONS_STREAM, OBSERVATIONS_SUBJECTS, -1),
    ):
        config = StreamConfig(
            name=name,
            subjects=[subjects],
            storage=StorageType.FILE,
            duplicate_window=DEDUPE_WINDOW_S,
            max_msgs_per_subject=per_subject,
            discard=DiscardPolicy.OLD,
        )
        try:
            await js.add_stream(config)
        except APIError as exc:
            if exc.err_code == 10058:  # "stream name already in use" (with another config): keep it
                continue
            # "subjects overlap with an existing stream": also what a client gets when another one
            # (an agent starting beside it, the coordinator) created this very stream a moment
            # before; when it is ours, keep it, and an overlap with another stream stays an error
            if exc.err_code == 10065 and await _stream_exists(js, name):
                continue
            raise


async def _stream_exists(js: JetStreamContext, name: str) -> bool:
    try:
        await js.stream_info(name)
    except NotFoundError:
        return False
    return True


async def publish(
    js: JetStreamContext, subject: str, body: bytes, msg_id: str, give_up: asyncio.Event | None = None
) -> bool:
    """Publish until the stream acknowledges it (True), or until give_up is set (False)."""
    while give_up is None or not give_up.is_set():
        try:
            await js.publish(subject, body, timeout=PUBLISH_TIMEOUT_S, headers={"Nats-Msg-Id": msg_id})
            return True
        except TRANSIENT:
            await asyncio.sleep(RETRY_WAIT_S)
    return False
