"""AMQP round trips while Prometheus scrapers hammer /metrics/per-object on the same event loop.

    python bench/scrape_latency.py                    # 2,000 queues, 4 scrapers, cache 5 s and off
    python bench/scrape_latency.py --queues 5000 --scrapers 8 --seconds 10

For each cache setting (``prometheus_cache_ttl``) it starts a broker in this process
(lapine.testing.BrokerThread), declares ``--queues`` queues, starts ``--scrapers`` threads that
scrape /metrics/per-object back to back, and measures the round trip of a passive queue.declare
from a pika client for ``--seconds``. It prints the median and 99th percentile round trip and the
scrapes answered.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import urllib.request

import pika

from lapine.testing import BrokerThread


def run(queues: int, scrapers: int, seconds: float, cache_ttl: float) -> tuple[float, float, int]:
    with BrokerThread(management_port=-1, prometheus_cache_ttl=cache_ttl) as broker:
        connection = pika.BlockingConnection(pika.URLParameters(broker.url))
        channel = connection.channel()
        for n in range(queues):
            channel.queue_declare(f"bench-{n}")
        stop = threading.Event()
        scraped = [0]

        def scrape() -> None:
            while not stop.is_set():
                with urllib.request.urlopen(broker.prometheus_url + "/metrics/per-object", timeout=30) as response:
                    response.read()
                scraped[0] += 1

        threads = [threading.Thread(target=scrape, daemon=True) for _ in range(scrapers)]
        for thread in threads:
            thread.start()
        round_trips: list[float] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            channel.queue_declare("bench-0", passive=True)
            round_trips.append((time.perf_counter() - started) * 1000)
        stop.set()
        for thread in threads:
            thread.join()
        connection.close()
    round_trips.sort()
    return statistics.median(round_trips), round_trips[int(len(round_trips) * 0.99)], scraped[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queues", type=int, default=2000)
    parser.add_argument("--scrapers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    print(f"{args.queues} queues, {args.scrapers} scrapers, {args.seconds:g} s each")
    print("cache_ttl  rtt_median_ms  rtt_p99_ms  scrapes")
    for cache_ttl in (5.0, 0.0):
        median, p99, scrapes = run(args.queues, args.scrapers, args.seconds, cache_ttl)
        print(f"{cache_ttl:9g}  {median:13.2f}  {p99:10.2f}  {scrapes:7d}")


if __name__ == "__main__":
    main()
