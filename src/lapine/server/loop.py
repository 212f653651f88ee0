"""The event loop the broker runs on: uvloop where it is installed, asyncio's own otherwise."""

from __future__ import annotations

import asyncio


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # uvloop does not build everywhere (Windows); asyncio's loop works too
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
