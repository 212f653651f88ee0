"""Credit flow: a publisher cannot outrun the consumers of the queues it publishes to.

RabbitMQ gives each link between reader, channel and queue a credit that the receiving end
grants back as it processes messages, so a publisher that never waits is slowed to the pace of
its queues and their consumers, and TCP back-pressure reaches it (rabbit's ``credit_flow``).
Lapine is one process on one event loop, so the scarce thing is a share of each loop tick:

* A queue is *behind* when it has consumers and a backlog past ``BEHIND_MESSAGES`` messages or
  ``BEHIND_BYTES`` bytes: its consumers are not keeping up, and what a publisher adds now only
  lengthens the backlog (and, past the queue's window, goes to disk).
* A connection that puts messages into queues that are behind gets credit for them, granted
  again each event-loop tick: as many messages as those queues handed to their consumers since
  the last grant (the slowest of them counts), which is how RabbitMQ's queues grant credit back
  as they process. Past its credit the connection is not read from, and the frames it already
  sent wait. Consumers' acks, other connections and timers get their turn in between, so
  delivered/s is what the consumers can take, published/s follows it, the backlog stays near
  the threshold, and TCP back-pressure reaches the publisher. When the queues stood still, the
  connection waits ``RETRY_SECONDS`` and then gets ``MIN_CREDIT``: a stalled consumer slows a
  publisher to a trickle, and nothing (say, acks sent on the publishing connection itself,
  behind its own publishes) waits forever.
* A queue with no consumer is never behind: publishing into it is as fast as RabbitMQ's (the
  backlog pages to disk), and a publisher is never held waiting for a consumer that may not come.

A connection that was held shows RabbitMQ's connection state ``flow`` for ``FLOW_STATE_SECONDS``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from lapine.broker.queue import Queue

# A queue with consumers is behind past this backlog (ready in memory plus paged out), well
# under the default queue window so that a live queue's backlog does not go to disk ...
BEHIND_MESSAGES = 5_000
# ... or past this many bytes of ready message bodies.
BEHIND_BYTES = 16 * 1024 * 1024
# A connection waiting for credit from queues that stood still tries again after this long, and
# then gets this many messages of credit.
RETRY_SECONDS = 0.01
MIN_CREDIT = 10
# How long a connection that was held by credit flow shows the state "flow" (RabbitMQ: 5 s).
FLOW_STATE_SECONDS = 5.0


def is_behind(queue: Queue) -> bool:
    """The queue's consumers are not keeping up with what is published to it."""
    return bool(queue.consumers) and (
        len(queue.ready) + queue.paged > BEHIND_MESSAGES or queue.ready_bytes > BEHIND_BYTES
    )


class Publisher(Protocol):
    """What publishes into queues and is charged credit for it (a connection)."""

    def charge(self, queue: Queue) -> None:
        """One message went into ``queue``, which is behind."""
        ...


class Credit:
    """One connection's credit for the queues that are behind."""

    __slots__ = ("_marks", "granted", "held_at", "spent")

    def __init__(self) -> None:
        self.spent = 0
        self.granted = MIN_CREDIT
        # The queues that were behind when charged since the last grant, with how many messages
        # each had handed out then.
        self._marks: dict[Queue, int] = {}
        # When the connection last ran out (scheduler time), for the state "flow".
        self.held_at = float("-inf")

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.granted

    def charge(self, queue: Queue) -> bool:
        """One message went into ``queue``, which is behind; True when that used the credit up."""
        if queue not in self._marks:
            self._marks[queue] = queue.stats.deliver_get
        self.spent += 1
        return self.spent >= self.granted

    def grant(self, trickle: bool = False) -> None:
        """Credit again (each event-loop tick): as many messages as the slowest of the queues
        that were behind handed out since the last grant. None when they all stood still,
        except a trickle when ``trickle`` (the retry timer), so that nothing waits forever."""
        self.spent = 0
        marks = self._marks
        for queue in [queue for queue in marks if queue.deleted or not is_behind(queue)]:
            del marks[queue]  # caught up (or gone): it holds nobody back any more
        if not marks:
            self.granted = MIN_CREDIT
            return
        progress = min(queue.stats.deliver_get - then for queue, then in marks.items())
        if progress > 0:
            marks.clear()
            self.granted = progress
        else:
            # Keep the marks: progress is counted from them at the next grant.
            self.granted = MIN_CREDIT if trickle else 0

    def forget(self) -> None:
        self._marks.clear()
