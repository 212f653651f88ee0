"""MQTT over WebSocket, as RabbitMQ's Web MQTT plugin serves it: binary WebSocket messages on
path /ws (subprotocol "mqtt"), carrying the same byte stream a TCP connection would.

Each WebSocket gets an MqttConnection; a writer task sends what the connection produces, in
order, and the reading loop feeds it the client's messages.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSMsgType, web

from lapine.broker import flow
from lapine.mqtt import packets as p
from lapine.mqtt.connection import MqttConnection
from lapine.mqtt.node import MqttNode

log = logging.getLogger("lapine.server")

PATH = "/ws"
NODE_KEY = web.AppKey("mqtt_node", MqttNode)


def create_web_mqtt_app(node: MqttNode) -> web.Application:
    app = web.Application()
    app[NODE_KEY] = node
    app.router.add_get(PATH, _websocket)
    return app


async def _websocket(request: web.Request) -> web.WebSocketResponse:
    node = request.app[NODE_KEY]
    ws = web.WebSocketResponse(protocols=("mqtt", "mqttv3.1"), max_msg_size=0)
    await ws.prepare(request)
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    peer = request.transport.get_extra_info("peername") if request.transport else None
    local = request.transport.get_extra_info("sockname") if request.transport else None
    connection = MqttConnection(
        node,
        (str(peer[0]), int(peer[1])) if peer else ("unknown", 0),
        ready.set,
        (str(local[0]), int(local[1])) if local else ("", 0),
        transport="secure websocket" if request.secure else "websocket",
    )
    last = [loop.time()]  # when the client last sent something, for _keepalive
    writer = loop.create_task(_write(ws, connection, ready))
    keepalive = loop.create_task(_keepalive(ws, connection, last))
    try:
        async for message in ws:
            if message.type is WSMsgType.BINARY:
                last[0] = loop.time()
                connection.data_received(message.data)
                await _wait_for_credit(connection)
                await _wait_for_alarms(connection)
                if connection.finished:
                    break
            elif message.type is WSMsgType.TEXT:
                log.error("closing Web MQTT connection %s: text frames are not MQTT", connection.name)
                break
    finally:
        keepalive.cancel()
        ready.set()
        await writer
        if not ws.closed:
            await ws.close()
        connection.connection_lost()
    return ws


async def _wait_for_alarms(connection: MqttConnection) -> None:
    """A memory or disk alarm stops reading a WebSocket that published, as a TCP one, until it
    clears (the alarm monitor samples every alarm_check_interval seconds)."""
    if not connection.published:
        return
    connection.published = False
    broker = connection.broker
    if not broker.alarms:
        return
    connection.blocked = True
    try:
        while broker.alarms and not connection.finished:
            await asyncio.sleep(broker.config.alarm_check_interval)
    finally:
        connection.blocked = False


async def _wait_for_credit(connection: MqttConnection) -> None:
    """Credit flow: out of credit, the client's next messages are not read until its held
    packets have gone on (credit is granted again each loop tick, as for TCP)."""
    while connection.held is not None and not connection.finished:
        granted = connection.credit.granted
        await asyncio.sleep(0 if granted else flow.RETRY_SECONDS)
        connection.grant_credit(trickle=not granted)
        connection.release_held()


async def _write(ws: web.WebSocketResponse, connection: MqttConnection, ready: asyncio.Event) -> None:
    while not ws.closed:
        await ready.wait()
        ready.clear()
        if connection.output_delay:
            delay, connection.output_delay = connection.output_delay, 0.0
            await asyncio.sleep(delay)
        if connection.output:
            data = connection.take_output()
            connection.bytes_sent += len(data)
            try:
                await ws.send_bytes(data)
            except ConnectionError:
                return
            connection.output_written()
        if connection.finished:
            await ws.close()
            return


async def _keepalive(ws: web.WebSocketResponse, connection: MqttConnection, last: list[float]) -> None:
    """Closed after 1.5 keepalive intervals of silence, as on TCP."""
    loop = asyncio.get_running_loop()
    while not ws.closed:
        keepalive = connection.keepalive if connection.state.value == "open" else 0
        await asyncio.sleep(keepalive * 1.5 if keepalive else 1.0)
        if keepalive and loop.time() - last[0] >= keepalive * 1.5:
            log.error("closing Web MQTT connection %s (keepalive timeout)", connection.name)
            connection.close(p.KEEP_ALIVE_TIMEOUT)
            return
