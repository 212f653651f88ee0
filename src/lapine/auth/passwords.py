"""Password hashes in RabbitMQ's format, so that definitions move between the two brokers.

RabbitMQ's default (rabbit_password_hashing_sha256): base64(salt + sha256(salt + password)),
with a 4-byte random salt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

HASHING_ALGORITHM = "rabbit_password_hashing_sha256"
_ALGORITHMS = {
    "rabbit_password_hashing_sha256": hashlib.sha256,
    "rabbit_password_hashing_sha512": hashlib.sha512,
    "rabbit_password_hashing_md5": hashlib.md5,
}


def hash_password(password: str, algorithm: str = HASHING_ALGORITHM, salt: bytes | None = None) -> str:
    salt = os.urandom(4) if salt is None else salt
    digest = _ALGORITHMS[algorithm](salt + password.encode()).digest()
    return base64.b64encode(salt + digest).decode()


def check_password(password: str, password_hash: str, algorithm: str = HASHING_ALGORITHM) -> bool:
    if not password_hash or algorithm not in _ALGORITHMS:
        return False
    try:
        raw = base64.b64decode(password_hash, validate=True)
    except ValueError:
        return False
    salt = raw[:4]
    expected = hash_password(password, algorithm, salt)
    return hmac.compare_digest(expected, password_hash)
