"""Keep one subscription to a shared-store channel alive, for state a process keeps in memory.

A process that remembers something other processes can change (sessions ended, tokens revoked) hears of
the changes on a pub/sub channel. Messages published while it was not subscribed are gone, so it must
know when its view may have missed some: ``on_fresh`` runs whenever a subscription starts afresh (the
first one, each one after a failure, and when the client reconnected on its own), ``on_lost`` when one
ends. Each caller decides what that means for its memory (read it all again, or empty it).

Runs in the calling thread until ``stopped`` is set; callers start it in a daemon thread of their own.
"""

import logging
import threading
from collections.abc import Callable

from authserver.storage.kv import KeyValueStore

RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)  # after a failed subscription, then every 5 s
POLL_SECONDS = 1.0  # how often ``stopped`` is looked at while nothing arrives


def follow(
    kv: KeyValueStore,
    channel: str,
    *,
    stopped: threading.Event,
    on_fresh: Callable[[], None],
    on_message: Callable[[bytes], None],
    on_lost: Callable[[], None],
    what: str,
    log: logging.Logger,
) -> None:
    failures = 0
    while not stopped.is_set():
        try:
            subscription = kv.subscribe(channel)
        except Exception:
            delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
            failures += 1
            log.warning("%s: cannot subscribe to the shared store; again in %.1f s", what, delay)
            stopped.wait(delay)
            continue
        failures = 0
        try:
            on_fresh()
            reconnects = subscription.reconnects
            while not stopped.is_set() and not subscription.closed:
                message = subscription.get(timeout=POLL_SECONDS)
                if subscription.reconnects != reconnects:
                    reconnects = subscription.reconnects
                    on_fresh()  # the client subscribed again on a new connection: messages may be gone
                if message is not None:
                    on_message(message)
        except Exception:
            log.warning("%s: the subscription broke; subscribing again", what, exc_info=True)
        finally:
            on_lost()
            subscription.close()
