"""Password hashes in RabbitMQ's format, so that definitions move between the two brokers, and a
stronger one for brokers whose definitions stay with Lapine.

RabbitMQ's default (rabbit_password_hashing_sha256): base64(salt + sha256(salt + password)),
with a 4-byte random salt. One SHA-256 is cheap to guess offline from a stolen database or export,
so ``password_hashing_module = "lapine_password_hashing_pbkdf2_sha256"`` hashes new passwords with
PBKDF2-HMAC-SHA256 instead: base64(iterations as 4 bytes + 16-byte salt + 32-byte key). RabbitMQ
cannot check those hashes: an export holding them imports into Lapine only.

An empty password never logs in, as in RabbitMQ.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections import OrderedDict

HASHING_ALGORITHM = "rabbit_password_hashing_sha256"
PBKDF2_SHA256 = "lapine_password_hashing_pbkdf2_sha256"
_ALGORITHMS = {
    "rabbit_password_hashing_sha256": hashlib.sha256,
    "rabbit_password_hashing_sha512": hashlib.sha512,
    "rabbit_password_hashing_md5": hashlib.md5,
}
ALGORITHMS = (*_ALGORITHMS, PBKDF2_SHA256)
# About 70 ms on one core of a small machine: each guess costs an attacker as much.
PBKDF2_ITERATIONS = 100_000
_PBKDF2_SALT = 16

# Checking a PBKDF2 hash costs tens of milliseconds, and HTTP clients send their password with every
# request: a password that checked out is remembered (as a keyed digest, never in clear) per hash.
_VERIFIED_MAX = 1024
_verified: OrderedDict[tuple[str, bytes], None] = OrderedDict()
_CACHE_KEY = os.urandom(32)


def is_costly(algorithm: str) -> bool:
    """Whether checking a password with this algorithm takes long enough to keep off the event loop."""
    return algorithm == PBKDF2_SHA256


def hash_password(password: str, algorithm: str = HASHING_ALGORITHM, salt: bytes | None = None) -> str:
    if algorithm == PBKDF2_SHA256:
        return _pbkdf2(password, os.urandom(_PBKDF2_SALT) if salt is None else salt, PBKDF2_ITERATIONS)
    salt = os.urandom(4) if salt is None else salt
    digest = _ALGORITHMS[algorithm](salt + password.encode()).digest()
    return base64.b64encode(salt + digest).decode()


def check_password(password: str, password_hash: str, algorithm: str = HASHING_ALGORITHM) -> bool:
    if not password or not password_hash or algorithm not in ALGORITHMS:
        return False
    try:
        raw = base64.b64decode(password_hash, validate=True)
    except ValueError:
        return False
    if algorithm == PBKDF2_SHA256:
        return _check_pbkdf2(password, password_hash, raw)
    expected = hash_password(password, algorithm, raw[:4])
    return hmac.compare_digest(expected, password_hash)


def _pbkdf2(password: str, salt: bytes, iterations: int) -> str:
    key = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return base64.b64encode(iterations.to_bytes(4, "big") + salt + key).decode()


def _check_pbkdf2(password: str, password_hash: str, raw: bytes) -> bool:
    if len(raw) != 4 + _PBKDF2_SALT + 32:
        return False
    remembered = (password_hash, hmac.digest(_CACHE_KEY, password.encode(), "sha256"))
    if remembered in _verified:
        _verified.move_to_end(remembered)
        return True
    iterations, salt = int.from_bytes(raw[:4], "big"), raw[4 : 4 + _PBKDF2_SALT]
    if not hmac.compare_digest(_pbkdf2(password, salt, iterations), password_hash):
        return False
    _verified[remembered] = None
    if len(_verified) > _VERIFIED_MAX:
        _verified.popitem(last=False)
    return True
