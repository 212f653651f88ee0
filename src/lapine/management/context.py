"""What every handler can reach through its request: the broker, the rate sampler, the node."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiohttp import web

from lapine.broker.broker import Broker
from lapine.management.rates import Sampler


@dataclass
class Node:
    """Facts about this running node that the model does not hold: ports and start time."""

    name: str
    started_at: float = field(default_factory=time.time)
    # protocol -> (address, port), filled in as the listeners start.
    listeners: dict[str, tuple[str, int]] = field(default_factory=dict)


BROKER = web.AppKey("broker", Broker)
SAMPLER = web.AppKey("sampler", Sampler)
NODE = web.AppKey("node", Node)


def broker_of(request: web.Request) -> Broker:
    return request.app[BROKER]


def sampler_of(request: web.Request) -> Sampler:
    return request.app[SAMPLER]


def node_of(request: web.Request) -> Node:
    return request.app[NODE]
