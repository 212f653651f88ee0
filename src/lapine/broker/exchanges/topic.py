"""The topic exchange: dot-separated words, ``*`` for exactly one word, ``#`` for zero or more.

Words are what RabbitMQ's ``split_topic_key`` makes of a key (rabbit_db_topic_exchange.erl): the
empty key has no words at all, and otherwise every dot separates words, so empty words count
("." is two empty words, "a." is "a" then an empty word). Hence binding "#" matches the key "",
binding "*" does not, and binding "" matches only the key "".

Binding keys are compiled into a trie of words, as RabbitMQ's is; a routing key is matched by
walking the trie with the set of nodes it can be at (a small NFA), which stays polynomial however
many ``#`` a binding has. Results are cached per routing key, since publishers tend to reuse a few
keys; any change to the bindings clears the cache.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, ClassVar

from lapine.broker.exchanges.base import EMPTY, ArgumentsKey, CountedDestinations, Router


def split_words(key: str) -> list[str]:
    """The words of a topic key, as RabbitMQ splits them: "" has none, "." has two empty ones."""
    return key.split(".") if key else []


class _Node:
    """A trie node: the edges leaving it by literal word, by ``*`` and by ``#``."""

    __slots__ = ("children", "destinations", "hash", "is_hash", "parent", "star", "word")

    def __init__(self, parent: _Node | None, word: str) -> None:
        self.parent = parent
        self.word = word
        # A node reached through a "#" edge may also consume any number of further words.
        self.is_hash = word == "#"
        self.children: dict[str, _Node] = {}
        self.star: _Node | None = None
        self.hash: _Node | None = None
        self.destinations = CountedDestinations()

    def child(self, word: str) -> _Node | None:
        if word == "*":
            return self.star
        if word == "#":
            return self.hash
        return self.children.get(word)

    def make_child(self, word: str) -> _Node:
        node = self.child(word)
        if node is None:
            node = _Node(self, word)
            if word == "*":
                self.star = node
            elif word == "#":
                self.hash = node
            else:
                self.children[word] = node
        return node

    def drop_child(self, word: str) -> None:
        if word == "*":
            self.star = None
        elif word == "#":
            self.hash = None
        else:
            del self.children[word]

    def is_empty(self) -> bool:
        return not (self.destinations or self.children or self.star or self.hash)


def _enter(states: dict[_Node, None], node: _Node | None) -> None:
    """Add ``node`` to the state set with every "#" chain below it, each of which may match nothing."""
    while node is not None and node not in states:
        states[node] = None
        node = node.hash


class TopicRouter(Router):
    type_name = "topic"
    # Bound on the route cache: enough for the working set of keys of typical publishers while
    # keeping memory flat when keys are unique per message (then the oldest entries go first).
    cache_size: ClassVar[int] = 4096

    __slots__ = ("_cache", "_root")

    def __init__(self) -> None:
        super().__init__()
        self._root = _Node(None, "")
        self._cache: dict[str, tuple[Hashable, ...]] = {}

    def _added(
        self, destination: Hashable, routing_key: str, args_key: ArgumentsKey, arguments: Mapping[str, Any]
    ) -> None:
        node = self._root
        for word in split_words(routing_key):
            node = node.make_child(word)
        node.destinations.add(destination)
        self._cache.clear()

    def _removed(
        self, destination: Hashable, routing_key: str, args_key: ArgumentsKey, arguments: Mapping[str, Any]
    ) -> None:
        node = self._root
        for word in split_words(routing_key):
            child = node.child(word)
            assert child is not None, "the base class only removes bindings it holds"
            node = child
        node.destinations.remove(destination)
        # Prune the branch that now leads nowhere, so matching never walks dead nodes.
        while node.parent is not None and node.is_empty():
            node.parent.drop_child(node.word)
            node = node.parent
        self._cache.clear()

    def route(self, routing_key: str, headers: Mapping[str, Any] | None = None) -> tuple[Hashable, ...]:
        cache = self._cache
        result = cache.get(routing_key)
        if result is None:
            result = self._match(routing_key)
            if len(cache) >= self.cache_size:
                del cache[next(iter(cache))]
            cache[routing_key] = result
        return result

    def _match(self, routing_key: str) -> tuple[Hashable, ...]:
        states: dict[_Node, None] = {}
        _enter(states, self._root)
        for word in split_words(routing_key):
            following: dict[_Node, None] = {}
            for node in states:
                child = node.children.get(word)
                if child is not None:
                    _enter(following, child)
                if node.star is not None:
                    _enter(following, node.star)
                if node.is_hash:
                    _enter(following, node)
            if not following:
                return EMPTY
            states = following
        matched = [node.destinations for node in states if node.destinations]
        if not matched:
            return EMPTY
        if len(matched) == 1:
            return matched[0].members
        found: dict[Hashable, None] = {}
        for counted in matched:
            found.update(dict.fromkeys(counted.members))
        return tuple(found)
