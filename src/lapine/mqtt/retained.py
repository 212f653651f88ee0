"""Retained messages, one set per vhost, looked up by exact topic as RabbitMQ's retainer does.

They live in memory and in a small SQLite file of the data directory (RabbitMQ keeps them in a
DETS file per vhost), so they survive a restart. Writes are rare (a retained publish or its
clearing), small, and go to a WAL-mode database without fsync per write: a crash may lose the
last ones, as RabbitMQ's DETS store, synced every 2 s, may.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lapine.mqtt.properties import decode_properties, encode_properties
from lapine.store.datadir import private_file

FILE_NAME = "mqtt_retained.sqlite3"


@dataclass(slots=True)
class RetainedMessage:
    topic: str
    payload: bytes
    qos: int
    properties: dict[str, Any] = field(default_factory=dict)
    # Wall-clock second after which it is gone (MQTT 5 Message Expiry Interval); 0: never.
    expires_at: float = 0.0


class RetainedStore:
    def __init__(self, path: Path | None = None) -> None:
        self._messages: dict[tuple[str, str], RetainedMessage] = {}
        self._db: sqlite3.Connection | None = None
        if path is not None:
            self._open(path)

    def _open(self, path: Path) -> None:
        db = sqlite3.connect(private_file(path), isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS retained (vhost TEXT, topic TEXT, qos INTEGER, payload BLOB,"
            " properties BLOB, expires_at REAL, PRIMARY KEY (vhost, topic))"
        )
        for vhost, topic, qos, payload, properties, expires_at in db.execute("SELECT * FROM retained"):
            props = decode_properties(properties, 0)[0] if properties else {}
            self._messages[(vhost, topic)] = RetainedMessage(topic, payload, qos, props, expires_at)
        self._db = db

    def __len__(self) -> int:
        return len(self._messages)

    def retain(self, vhost: str, message: RetainedMessage) -> None:
        """Keep the message as the topic's retained one; an empty payload clears the topic."""
        key = (vhost, message.topic)
        if not message.payload:
            if self._messages.pop(key, None) is not None and self._db is not None:
                self._db.execute("DELETE FROM retained WHERE vhost = ? AND topic = ?", key)
            return
        self._messages[key] = message
        if self._db is not None:
            properties = encode_properties(message.properties) if message.properties else b""
            self._db.execute(
                "INSERT OR REPLACE INTO retained VALUES (?, ?, ?, ?, ?, ?)",
                (vhost, message.topic, message.qos, message.payload, properties, message.expires_at),
            )

    def lookup(self, vhost: str, topic: str) -> RetainedMessage | None:
        message = self._messages.get((vhost, topic))
        if message is not None and message.expires_at and message.expires_at <= time.time():
            self.retain(vhost, RetainedMessage(topic, b"", 0))
            return None
        return message

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
