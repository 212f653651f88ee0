"""HTTP answers that promise durability wait for the store, without blocking the event loop.

Declaring, deleting and binding durable exchanges and queues only submits the writes
(broker/persistence.py); a write request whose handler moved the persistence's write count is
answered once a store barrier says those writes are on disk, as RabbitMQ answers only then.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.typedefs import Handler

from lapine.management.context import broker_of
from lapine.store import Store

_READS = ("GET", "HEAD", "OPTIONS")


@web.middleware
async def answer_when_durable(request: web.Request, handler: Handler) -> web.StreamResponse:
    broker = broker_of(request)
    persistence = broker.persistence
    if request.method in _READS or persistence is None or broker.store is None:
        return await handler(request)
    writes = persistence.writes
    try:
        return await handler(request)
    finally:
        if persistence.writes != writes:
            await store_barrier(broker.store)


async def store_barrier(store: Store) -> None:
    """Everything submitted to the store so far is durable (its barrier called back)."""
    done = asyncio.get_running_loop().create_future()
    store.submit_barrier(lambda: None if done.done() else done.set_result(None))
    await done
