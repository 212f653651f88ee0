"""The web UI in a real headless browser: Debian's chromium driven by Playwright.

Log in as guest, watch a queue declared by a pika client appear, publish and get a message
through the UI, see the message-rate chart move, and add a policy that a client's queue obeys.
Screenshots go to $LAPINE_UI_SHOTS when set.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pika
import pytest

from lapine.testing import BrokerThread
from tests.management.client import Http
from tests.management.conftest import amqp_params

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = pytest.mark.skipif(not CHROMIUM, reason="Debian's chromium is not installed (apt-get install chromium)")

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def ui_broker() -> Iterator[BrokerThread]:
    with BrokerThread(management_sample_interval=0.5) as running:
        yield running


@pytest.fixture(scope="module")
def page(ui_broker: BrokerThread) -> Iterator[Any]:
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        tab = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        tab.on("pageerror", lambda error: errors.append(str(error)))
        # The broker's Content-Security-Policy must let the whole UI work: a refusal is an error too.
        tab.on("console", lambda message: "Content Security Policy" in message.text and errors.append(message.text))
        # Refresh every 2 s (the fastest the UI offers) so that the test need not wait long.
        tab.add_init_script("localStorage.setItem('lapine.refresh', '2000')")
        yield tab
        browser.close()
        assert not errors, f"JavaScript errors: {errors}"


def shot(page: Any, name: str) -> None:
    folder = os.environ.get("LAPINE_UI_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        # A sticky header would be painted mid-page in a full-page capture: pin it for the shot.
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True, style=".topbar{position:static}")


def test_login_refused_then_accepted(page: Any, ui_broker: BrokerThread) -> None:
    page.goto(ui_broker.management_url + "/")
    page.fill("input[name=username]", "guest")
    page.fill("input[name=password]", "wrong")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#login-error:not(.hidden)")
    assert "Login failed" in page.inner_text("#login-error")
    shot(page, "login")
    page.fill("input[name=password]", "guest")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#totals .total")
    assert page.inner_text("#whoami") == "guest"


def test_queue_declared_by_a_client_appears(page: Any, ui_broker: BrokerThread, unique: Callable[[str], str]) -> None:
    queue = unique("ui-q")
    page.goto(ui_broker.management_url + "/#/queues")
    page.wait_for_selector("#list table")
    connection = pika.BlockingConnection(amqp_params(ui_broker.url))
    try:
        connection.channel().queue_declare(queue)
        # No reload: the page polls the API and the row shows up by itself.
        page.wait_for_selector(f"#list a:text-is('{queue}')", timeout=8000)
    finally:
        connection.close()


def test_publish_and_get_from_the_queue_page(page: Any, ui_broker: BrokerThread, unique: Callable[[str], str]) -> None:
    queue = unique("ui-msg")
    connection = pika.BlockingConnection(amqp_params(ui_broker.url))
    connection.channel().queue_declare(queue)
    connection.close()
    page.goto(f"{ui_broker.management_url}/#/queues/%2F/{queue}")
    page.wait_for_selector("#details dd")
    page.fill("form[data-form=publish] textarea[name=payload]", "hello from the browser")
    page.click("form[data-form=publish] button[type=submit]")
    page.wait_for_selector("[data-out=publish]:text('Message published.')")
    page.click("form[data-form=get] button[type=submit]")
    page.wait_for_selector("[data-out=get] .message")
    assert page.inner_text("[data-out=get] pre.payload") == "hello from the browser"
    shot(page, "queue")


def test_rate_chart_moves(page: Any, ui_broker: BrokerThread, unique: Callable[[str], str]) -> None:
    stop = threading.Event()
    queue = unique("ui-rate")

    def traffic() -> None:
        connection = pika.BlockingConnection(amqp_params(ui_broker.url))
        channel = connection.channel()
        channel.queue_declare(queue)
        while not stop.is_set():
            channel.basic_publish("", queue, b"tick")
            connection.process_data_events(0.02)
        connection.close()

    worker = threading.Thread(target=traffic, daemon=True)
    worker.start()
    try:
        page.goto(ui_broker.management_url + "/#/")
        page.wait_for_selector("#chart-rates svg")
        first = _publish_path(page)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            time.sleep(1)
            path = _publish_path(page)
            if path and path != first and _legend_rate(page) > 0:
                break
        else:
            pytest.fail("the message-rate chart did not move")
        shot(page, "overview")
    finally:
        stop.set()
        worker.join(timeout=5)


def _publish_path(page: Any) -> str:
    element = page.query_selector("#chart-rates path.series[data-series=publish]")
    return element.get_attribute("d") if element else ""


def _legend_rate(page: Any) -> float:
    text = page.inner_text("#chart-rates .legend span:first-child .val")
    return float(text.rstrip("/s").replace("k", "e3") or 0)


def _logged_in(page: Any, url: str) -> None:
    """Open url, logging in as guest if the login form shows (it does when this test runs alone)."""
    page.goto(url)
    page.wait_for_selector("#shell:not(.hidden), #login:not(.hidden)")
    if page.is_visible("#login"):
        page.fill("input[name=username]", "guest")
        page.fill("input[name=password]", "guest")
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("#shell:not(.hidden)")


def test_policy_added_in_the_ui_limits_a_client_queue(page: Any, ui_broker: BrokerThread) -> None:
    http = Http(ui_broker.management_url)
    _logged_in(page, ui_broker.management_url + "/#/admin/policies")
    page.wait_for_selector("#policies table")
    assert page.inner_text(".subnav a.active") == "Policies"
    page.click("#policy-form summary")
    form = "form#add-policy"
    page.select_option(f"{form} select[name=vhost]", "/")
    page.fill(f"{form} input[name=name]", "ui-limit")
    page.fill(f"{form} input[name=pattern]", "^ui-")
    page.select_option(f"{form} select[name=apply-to]", "queues")
    page.fill(f"{form} textarea[name=definition]", "max-length=1")
    page.click(f"{form} button[type=submit]")
    row = "#policies tr:has(td strong:text-is('ui-limit'))"
    page.wait_for_selector(row)
    cells = page.locator(f"{row} td").all_inner_texts()
    assert cells[:4] == ["/", "ui-limit", "^ui-", "Queues"]
    assert "max-length" in cells[4] and "1" in cells[4]

    reply = http.get("/api/policies/%2F/ui-limit")
    assert reply.status == 200
    assert reply.json["definition"] == {"max-length": 1}
    assert reply.json["pattern"] == "^ui-"
    assert reply.json["apply-to"] == "queues"

    connection = pika.BlockingConnection(amqp_params(ui_broker.url))
    try:
        channel = connection.channel()
        channel.queue_declare("ui-q")
        for n in range(3):
            channel.basic_publish("", "ui-q", f"m{n}".encode())
        assert channel.queue_declare("ui-q", passive=True).method.message_count == 1
        channel.queue_delete("ui-q")
    finally:
        connection.close()
    shot(page, "policies")

    page.once("dialog", lambda dialog: dialog.accept())
    page.click(f"{row} button[data-delete-policy]")
    page.wait_for_selector(row, state="detached")
    assert http.get("/api/policies/%2F/ui-limit").status == 404


def test_mqtt_connection_shows_its_protocol(page: Any, ui_broker: BrokerThread) -> None:
    from tests.mqtt.raw import RawClient

    client = RawClient(ui_broker.mqtt_port, level=5)
    try:
        client.connect("ui-mqtt-client")
        page.goto(ui_broker.management_url + "/#/connections")
        page.wait_for_selector("#list td:text-is('MQTT 5.0')", timeout=8000)
    finally:
        client.close()


def test_a_delayed_exchange_shows_its_messages_delayed(
    page: Any, ui_broker: BrokerThread, unique: Callable[[str], str]
) -> None:
    exchange = unique("ui-delayed")
    connection = pika.BlockingConnection(amqp_params(ui_broker.url))
    channel = connection.channel()
    channel.exchange_declare(exchange, "x-delayed-message", arguments={"x-delayed-type": "direct"})
    channel.basic_publish(exchange, "k", b"m", pika.BasicProperties(headers={"x-delay": 60_000}))
    try:
        page.goto(f"{ui_broker.management_url}/#/exchanges/%2F/{exchange}")
        page.wait_for_selector("#messages-delayed:text-is('1')", timeout=8000)
        shot(page, "delayed-exchange")
    finally:
        channel.exchange_delete(exchange)
        connection.close()
