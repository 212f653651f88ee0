"""A stateful property test of the message store with dirty restarts.

After RabbitMQ's classic_queue_prop_SUITE: operations are logged as they are submitted; a barrier
whose callback has run makes every operation before it *confirmed*. After a crash (the store
abandoned with work in flight) the recovered state must be the state after some prefix of the
log that contains every confirmed operation: nothing confirmed is lost, nothing is reordered,
nothing half-applied, and transient messages (non-persistent, or in a non-durable queue) are gone.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from lapine.store import QueueDef, SqliteStore, StoredMessage
from lapine.store.sqlite import OUT_OF_LINE_BYTES

QUEUES = ("a", "b", "tmp")  # "tmp" is not durable
DURABLE = {"a", "b"}

# queue -> seq -> (persistent, delivered)
State = dict[str, dict[int, tuple[bool, bool]]]
Op = tuple[str, str, tuple[int, ...], bool]  # kind, queue, seqs, persistent


# What was enqueued as (queue, seq): exchange, routing key, header, body, expires.
Content = dict[tuple[str, int], tuple[bytes, bytes, bytes, bytes, int | None]]


def make_content(queue: str, seq: int, big: bool) -> tuple[bytes, bytes, bytes, bytes, int | None]:
    body = f"{queue}:{seq}:".encode() * (1 + seq % 7)
    if big:
        body *= OUT_OF_LINE_BYTES // len(body) + 1
    return (b"ex%d" % (seq % 3), b"rk.%d" % seq, b"h%d" % seq, body, seq * 1000 if seq % 3 else None)


def apply(state: State, op: Op) -> None:
    kind, queue, seqs, persistent = op
    messages = state[queue]
    if kind == "enqueue":
        messages[seqs[0]] = (persistent, False)
    elif kind == "ack":
        for seq in seqs:
            messages.pop(seq, None)
    elif kind == "mark":
        for seq in seqs:
            if seq in messages:
                messages[seq] = (messages[seq][0], True)
    elif kind == "purge":
        messages.clear()


def replay(base: State, ops: list[Op]) -> State:
    state = {queue: dict(messages) for queue, messages in base.items()}
    for op in ops:
        apply(state, op)
    return state


def after_restart(state: State) -> State:
    return {
        queue: {seq: m for seq, m in messages.items() if m[0] and queue in DURABLE} for queue, messages in state.items()
    }


def as_stored(state: State, content: Content, queue: str) -> list[StoredMessage]:
    result = []
    for seq, (_, delivered) in sorted(state[queue].items()):
        exchange, routing_key, header, body, expires = content[(queue, seq)]
        result.append(StoredMessage(seq, exchange, routing_key, header, body, delivered, expires))
    return result


def notify_now(fn: object) -> None:
    fn()  # type: ignore[operator]


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="lapine-store-model-"))
        self.base: State = {queue: {} for queue in QUEUES}  # state when the log started
        self.log: list[Op] = []
        self.confirmed = 0  # log entries known durable
        self.lock = threading.Lock()
        self.next_seq = dict.fromkeys(QUEUES, 0)
        self.content: Content = {}
        self.store = self.open()

    def open(self) -> SqliteStore:
        # No fsync: a crash here is the process's, and the OS keeps what it was given.
        store = SqliteStore(self.dir, notify=notify_now, batch_max_rows=7, fsync=False)
        self.ids = {queue: store.put_queue(QueueDef("/", queue, durable=queue in DURABLE)) for queue in QUEUES}
        return store

    def current(self) -> State:
        return replay(self.base, self.log)

    def submit(self, op: Op) -> None:
        self.log.append(op)

    # --- operations ---------------------------------------------------------------------------

    @rule(queue=st.sampled_from(QUEUES), persistent=st.booleans(), count=st.integers(1, 12))
    def enqueue(self, queue: str, persistent: bool, count: int) -> None:
        for _ in range(count):
            seq = self.next_seq[queue]
            self.next_seq[queue] = seq + 1
            content = self.content[(queue, seq)] = make_content(queue, seq, big=False)
            exchange, routing_key, header, body, expires = content
            self.store.enqueue(
                self.ids[queue], seq, exchange, routing_key, header, body, persistent=persistent, expires=expires
            )
            self.submit(("enqueue", queue, (seq,), persistent))

    @rule(
        queues=st.lists(st.sampled_from(QUEUES), min_size=1, max_size=3, unique=True),
        persistent=st.booleans(),
        big=st.booleans(),
    )
    def enqueue_to_several(self, queues: list[str], persistent: bool, big: bool) -> None:
        """One message routed to several queues: each queue's copy is its own row."""
        exchange, routing_key, header, body, _ = make_content(queues[0], self.next_seq[queues[0]], big)
        for queue in queues:
            seq = self.next_seq[queue]
            self.next_seq[queue] = seq + 1
            expires = seq if seq % 2 else None
            self.content[(queue, seq)] = (exchange, routing_key, header, body, expires)
            self.store.enqueue(
                self.ids[queue], seq, exchange, routing_key, header, body, persistent=persistent, expires=expires
            )
            self.submit(("enqueue", queue, (seq,), persistent))

    @rule(queue=st.sampled_from(QUEUES), data=st.data())
    def ack(self, queue: str, data: st.DataObject) -> None:
        present = sorted(self.current()[queue])
        if present:
            seqs = tuple(data.draw(st.lists(st.sampled_from(present), max_size=6, unique=True)))
            self.store.ack(self.ids[queue], seqs)
            self.submit(("ack", queue, seqs, False))

    @rule(queue=st.sampled_from(QUEUES), data=st.data())
    def mark_delivered(self, queue: str, data: st.DataObject) -> None:
        present = sorted(self.current()[queue])
        if present:
            seqs = tuple(data.draw(st.lists(st.sampled_from(present), max_size=6, unique=True)))
            self.store.mark_delivered(self.ids[queue], seqs)
            self.submit(("mark", queue, seqs, False))

    @rule(queue=st.sampled_from(QUEUES))
    def purge(self, queue: str) -> None:
        self.store.purge(self.ids[queue])
        self.submit(("purge", queue, (), False))

    @rule()
    def barrier(self) -> None:
        """A confirm that nobody waits for: it may or may not have run when a crash comes."""
        upto = len(self.log)

        def confirmed() -> None:
            with self.lock:
                self.confirmed = max(self.confirmed, upto)

        self.store.submit_barrier(confirmed)

    @rule()
    def flush(self) -> None:
        self.store.sync()
        with self.lock:
            self.confirmed = len(self.log)

    @precondition(lambda self: self.log)
    @rule(queue=st.sampled_from(QUEUES), page=st.integers(1, 5))
    def page_through(self, queue: str, page: int) -> None:
        """Live reads see every submitted operation, persistent or not, committed or not."""
        found: list[StoredMessage] = []
        after = -1
        while batch := self.store.read_messages(self.ids[queue], after, page):
            found += batch
            after = batch[-1].seq
        assert found == as_stored(self.current(), self.content, queue)

    # --- restarts -----------------------------------------------------------------------------

    @rule()
    def crash(self) -> None:
        self.store.abandon()
        with self.lock:
            confirmed = self.confirmed
        self.store = self.open()
        recovered: State = {queue: {} for queue in QUEUES}
        for queue in QUEUES:
            for m in self.store.read_messages(self.ids[queue], -1, 10_000):
                assert m == as_stored({queue: {m.seq: (True, m.delivered)}}, self.content, queue)[0]
                recovered[queue][m.seq] = (True, m.delivered)
        prefixes = range(confirmed, len(self.log) + 1)
        candidates = [p for p in prefixes if after_restart(replay(self.base, self.log[:p])) == recovered]
        assert candidates, f"recovered state matches no prefix of the log from {confirmed} on"
        self.restarted(recovered)

    @rule()
    def restart(self) -> None:
        self.store.close()
        self.store = self.open()
        self.restarted(after_restart(self.current()))
        for queue in DURABLE:
            assert self.store.read_messages(self.ids[queue], -1, 10_000) == as_stored(self.base, self.content, queue)

    def restarted(self, state: State) -> None:
        self.base, self.log, self.confirmed = state, [], 0
        recovery = self.store.recover_queues()
        for queue in DURABLE:
            info = recovery[self.ids[queue]]
            seqs = sorted(state[queue])
            assert info.count == len(seqs)
            assert (info.first_seq, info.last_seq) == ((seqs[0], seqs[-1]) if seqs else (None, None))
            assert info.bytes == sum(len(self.content[(queue, seq)][3]) for seq in seqs)

    @invariant()
    def healthy(self) -> None:
        assert self.store.failed is None

    @precondition(lambda self: not self.log)
    @invariant()
    def no_stray_bodies(self) -> None:
        """Right after a restart, every shared body still stored is counted by the messages that
        point at it, and there is at least one."""
        strays = self.store._query(
            lambda conn: conn.execute(
                "SELECT count(*) FROM main.bodies AS x WHERE x.refs < 1 OR x.refs != "
                "(SELECT count(*) FROM main.messages AS m WHERE m.body_id = x.id)"
            ).fetchone()[0]
        )
        assert strays == 0

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)


StoreMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
test_store_model = StoreMachine.TestCase
