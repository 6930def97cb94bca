"""Self-healing Redis subscriptions: a daemon thread (sync) or a task (asyncio).

A subscriber that lost its connection may have missed messages, so ``on_reset`` runs when
the connection drops and again once it is back; callers flush what they derived from
messages (an L1 cache, a breaker mirror). Strictly private.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

from resilient.backends.base import MessageHandler, ResetHandler

logger = logging.getLogger("resilient.backends")

_POLL = 0.05  # how long one wait for a message lasts; bounds close() latency
_BACKOFF = (0.05, 0.1, 0.2, 0.5, 1.0)  # reconnect delays; the last one repeats


class _Resets:
    """Calls ``on_reset`` once per drop and once per reconnection.

    The state is updated before ``on_reset`` runs, so the handler can tell a drop from a
    reconnection through the subscription's ``connected`` property.
    """

    def __init__(self, on_reset: ResetHandler | None) -> None:
        self.on_reset = on_reset
        self.connected_before = False
        self.dropped = False

    @property
    def live(self) -> bool:
        return self.connected_before and not self.dropped

    def connected(self) -> None:
        reconnection = self.connected_before
        self.connected_before = True
        self.dropped = False
        if reconnection and self.on_reset is not None:
            self.on_reset()

    def drop(self) -> None:
        first = not self.dropped and self.connected_before
        self.dropped = True
        if first and self.on_reset is not None:
            self.on_reset()


class ThreadSubscription:
    """A subscription served by a daemon thread; ``close()`` stops it."""

    def __init__(
        self,
        client: Any,
        channel: str,
        on_message: MessageHandler,
        on_reset: ResetHandler | None,
    ) -> None:
        self.channel = channel
        self._client = client
        self._on_message = on_message
        self._resets = _Resets(on_reset)
        self._stop = threading.Event()
        self.ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"resilient-subscribe-{channel}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.channel)
                self._resets.connected()
                self.ready.set()
                attempt = 0
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=_POLL)
                    if message is not None and message["type"] == "message":
                        self._on_message(message["data"])
            except Exception:  # the connection is gone; any handler error must not kill us
                logger.debug("subscription to %s dropped", self.channel, exc_info=True)
                self._resets.drop()
                self._stop.wait(_BACKOFF[min(attempt, len(_BACKOFF) - 1)])
                attempt += 1
            finally:
                with contextlib.suppress(Exception):
                    pubsub.close()

    @property
    def connected(self) -> bool:
        """True while subscribed; False before the first connection and after a drop."""
        return self._resets.live

    def close(self) -> None:
        """Stop listening and wait for the thread to end."""
        self._stop.set()
        self._thread.join(timeout=2)


class AsyncSubscription:
    """A subscription served by an asyncio task; ``close()`` cancels it."""

    def __init__(
        self,
        client: Any,
        channel: str,
        on_message: MessageHandler,
        on_reset: ResetHandler | None,
    ) -> None:
        self.channel = channel
        self._client = client
        self._on_message = on_message
        self._resets = _Resets(on_reset)
        self.ready = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        attempt = 0
        while True:
            pubsub = None
            try:
                # An asyncio cluster client maps its slots lazily; pubsub needs the map.
                await self._client.initialize()
                pubsub = self._client.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self.channel)
                self._resets.connected()
                self.ready.set()
                attempt = 0
                while True:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=_POLL
                    )
                    if message is not None and message["type"] == "message":
                        self._on_message(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.debug("subscription to %s dropped", self.channel, exc_info=True)
                self._resets.drop()
                await asyncio.sleep(_BACKOFF[min(attempt, len(_BACKOFF) - 1)])
                attempt += 1
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()

    @property
    def connected(self) -> bool:
        """True while subscribed; False before the first connection and after a drop."""
        return self._resets.live

    def close(self) -> None:
        """Cancel the listening task."""
        self._task.cancel()

    async def aclose(self) -> None:
        """Cancel the listening task and wait (2 s at most) for it to end.

        The cancellation is repeated until it takes: ``asyncio.wait_for`` inside a client
        can swallow one on Python < 3.12 when its inner wait completes at that moment.
        """
        for _ in range(20):
            if self._task.done():
                break
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=0.1)
        if self._task.done() and not self._task.cancelled():
            self._task.exception()  # retrieved: a late error must not be logged as lost
