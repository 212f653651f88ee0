"""/api/nodes: this single node, with RabbitMQ's field names for what a Python process has."""

from __future__ import annotations

import os
import time

from aiohttp import web

from lapine.management import system
from lapine.management.auth import require_monitor
from lapine.management.context import broker_of, node_of
from lapine.management.http import json_response, listing, not_found, one
from lapine.management.overview import exchange_types


def node_info(request: web.Request) -> dict[str, object]:
    broker, node = broker_of(request), node_of(request)
    data_dir = broker.config.data_dir
    return {
        "name": node.name,
        "type": "disc",
        "running": True,
        "being_drained": False,
        "os_pid": str(os.getpid()),
        "uptime": int((time.time() - node.started_at) * 1000),
        "processors": system.processors(),
        "run_queue": 0,
        "rates_mode": "basic",
        "mem_used": system.resident_memory(),
        "mem_limit": system.memory_limit(broker.config),
        "mem_alarm": "memory" in broker.alarms,
        "mem_calculation_strategy": "rss",
        "disk_free": system.disk_free(data_dir),
        "disk_free_limit": broker.config.disk_free_limit,
        "disk_free_alarm": "disk" in broker.alarms,
        "fd_used": system.open_fds(),
        "fd_total": system.max_fds(),
        "sockets_used": len(broker.connections),
        "sockets_total": system.max_fds(),
        "proc_used": len(broker.connections) + 1,
        "proc_total": 1048576,
        "net_ticktime": 60,
        "partitions": [],
        "exchange_types": exchange_types(),
        "auth_mechanisms": [
            {"name": "PLAIN", "description": "SASL PLAIN authentication mechanism", "enabled": True},
            {"name": "AMQPLAIN", "description": "QPid AMQPLAIN mechanism", "enabled": True},
        ],
        "applications": [{"name": "lapine", "description": "Lapine", "version": _version()}],
        "contexts": [],
        "enabled_plugins": ["rabbitmq_management", "rabbitmq_prometheus"],
        "config_files": [],
        "log_files": [],
        "db_dir": data_dir,
        "cluster_links": [],
    }


def _version() -> str:
    from lapine import __version__

    return __version__


async def get_nodes(request: web.Request) -> web.Response:
    require_monitor(request)
    return listing(request, [node_info(request)])


async def get_node(request: web.Request) -> web.Response:
    require_monitor(request)
    if request.match_info["node"] != node_of(request).name:
        raise not_found()
    return one(request, node_info(request))


async def get_memory(request: web.Request) -> web.Response:
    require_monitor(request)
    if request.match_info["node"] != node_of(request).name:
        raise not_found()
    return json_response({"memory": {"total": {"rss": system.resident_memory()}}})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/nodes", get_nodes),
        web.get("/api/nodes/{node}", get_node),
        web.get("/api/nodes/{node}/memory", get_memory),
    ]
