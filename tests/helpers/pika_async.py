"""Awaitable wrappers around pika's callback-style AsyncioConnection, for async tests.

The connection runs on the test's own event loop (``custom_ioloop``), so a test can ``await``
futures completed by pika's callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pika
import pika.channel
from pika.adapters.asyncio_connection import AsyncioConnection


async def open_connection(params: pika.ConnectionParameters, timeout: float = 5.0) -> AsyncioConnection:
    loop = asyncio.get_running_loop()
    opened: asyncio.Future[AsyncioConnection] = loop.create_future()

    def on_open(conn: Any) -> None:
        if not opened.done():
            opened.set_result(conn)

    def on_error(conn: Any, err: BaseException | str) -> None:
        if not opened.done():
            opened.set_exception(err if isinstance(err, BaseException) else RuntimeError(err))

    AsyncioConnection(params, on_open_callback=on_open, on_open_error_callback=on_error, custom_ioloop=loop)
    return await asyncio.wait_for(opened, timeout)


async def close_connection(conn: AsyncioConnection, timeout: float = 5.0) -> None:
    if conn.is_closed:
        return
    loop = asyncio.get_running_loop()
    closed: asyncio.Future[None] = loop.create_future()
    conn.add_on_close_callback(lambda c, reason: closed.done() or closed.set_result(None))
    if not conn.is_closing:
        conn.close()
    await asyncio.wait_for(closed, timeout)


@contextlib.asynccontextmanager
async def connection(params: pika.ConnectionParameters) -> AsyncIterator[AsyncioConnection]:
    conn = await open_connection(params)
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):
            await close_connection(conn)


async def open_channel(conn: AsyncioConnection, timeout: float = 5.0) -> pika.channel.Channel:
    loop = asyncio.get_running_loop()
    opened: asyncio.Future[pika.channel.Channel] = loop.create_future()
    conn.channel(on_open_callback=lambda ch: opened.set_result(ch))
    return await asyncio.wait_for(opened, timeout)


async def call(method: Any, *args: Any, timeout: float = 5.0, **kwargs: Any) -> Any:
    """Run a pika asynchronous RPC method that takes a ``callback`` and await the reply frame."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()
    method(*args, callback=lambda frame: done.done() or done.set_result(frame), **kwargs)
    return await asyncio.wait_for(done, timeout)
