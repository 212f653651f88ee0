"""Users and their tags, and the rule that guest may only log in from the loopback interface."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from lapine.auth.passwords import ALGORITHMS, HASHING_ALGORITHM, check_password, hash_password

DEFAULT_USER = "guest"


@dataclass
class User:
    name: str
    password_hash: str
    tags: list[str] = field(default_factory=list)
    hashing_algorithm: str = HASHING_ALGORITHM

    def check(self, password: str) -> bool:
        return check_password(password, self.password_hash, self.hashing_algorithm)


class Users:
    """The user database. ``loopback_users`` may log in only from 127.0.0.0/8 or ::1. New passwords
    are hashed with ``hashing_algorithm`` (RabbitMQ's password_hashing_module)."""

    def __init__(self, hashing_algorithm: str = HASHING_ALGORITHM) -> None:
        if hashing_algorithm not in ALGORITHMS:
            choices = ", ".join(ALGORITHMS)
            raise ValueError(f"password_hashing_module must be one of {choices}, not '{hashing_algorithm}'")
        self.hashing_algorithm = hashing_algorithm
        self.users: dict[str, User] = {}
        self.loopback_users: set[str] = {DEFAULT_USER}

    def add(self, name: str, password: str, tags: list[str] | None = None) -> User:
        algorithm = self.hashing_algorithm
        user = User(name, hash_password(password, algorithm), list(tags or []), algorithm)
        self.users[name] = user
        return user

    def get(self, name: str) -> User | None:
        return self.users.get(name)

    def authenticate(self, name: str, password: str, peer_host: str) -> User | None:
        user = self.users.get(name)
        if user is None or not user.check(password):
            return None
        if name in self.loopback_users and not is_loopback(peer_host):
            return None
        return user


def is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback
