"""A chunk's bloom filter of the filter values of its messages (x-stream-filter-value).

A reader with x-stream-filter skips a chunk whose filter matches none of its values without
reading its messages; a match may be false, so each message is checked again.
"""

from __future__ import annotations

import hashlib

DEFAULT_SIZE = 16  # bytes, as RabbitMQ's x-stream-filter-size-bytes default
MIN_SIZE, MAX_SIZE = 16, 255


def _bits(value: bytes, size: int) -> tuple[int, int]:
    digest = hashlib.blake2b(value, digest_size=8).digest()
    m = size * 8
    h1 = int.from_bytes(digest[:4], "big")
    h2 = int.from_bytes(digest[4:], "big")
    return h1 % m, (h1 + h2) % m


def build(values: set[bytes], size: int) -> bytes:
    """The filter of a set of values; empty when there are none."""
    if not values:
        return b""
    bits = bytearray(size)
    for value in values:
        for bit in _bits(value, size):
            bits[bit >> 3] |= 1 << (bit & 7)
    return bytes(bits)


def may_contain(bloom: bytes, value: bytes) -> bool:
    if not bloom:
        return False
    return all(bloom[bit >> 3] & (1 << (bit & 7)) for bit in _bits(value, len(bloom)))
