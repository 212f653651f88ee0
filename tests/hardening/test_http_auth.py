"""The management API against password guessing, cross-site requests and DNS rebinding.

RabbitMQ 3.10.8, measured for comparison: it takes a text/plain or form body holding JSON as JSON
(so a cross-site form can post definitions), checks no Origin or Host, and answers a wrong password
at once. Lapine refuses the first two and delays the third, per source address.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import threading
import time
from pathlib import Path

import pika
import pika.exceptions
import pytest

from lapine.config import Config
from lapine.testing import BrokerThread
from tests.hardening.conftest import StartBroker
from tests.management.client import Http, Reply

DELAY = 1.0


@pytest.fixture
def running(start_broker: StartBroker) -> BrokerThread:
    return start_broker(management_port=0, login_failure_delay=DELAY)


@pytest.fixture
def api(running: BrokerThread) -> Http:
    return Http(running.management_url)


def raw(
    running: BrokerThread,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    user: str = "guest",
    password: str = "guest",
    source: str = "127.0.0.1",
) -> Reply:
    """One request with exactly these headers (urllib adds its own), from a chosen source address."""
    assert running.server is not None and running.server.management_port is not None
    port = running.server.management_port
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    sent = {"Authorization": f"Basic {token}", "Host": f"127.0.0.1:{port}", **(headers or {})}
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in sent.items():
            connection.putheader(name, value)
        if body or method in ("POST", "PUT"):
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body or None)
        response = connection.getresponse()
        text = response.read().decode()
        return Reply(response.status, json.loads(text) if text.strip() else None, dict(response.getheaders()))
    finally:
        connection.close()


NOT_JSON = "a request body must be sent as application/json"
ADMIN = json.dumps({"users": [{"name": "mallory", "password": "x", "tags": "administrator"}]}).encode()


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", b"file=" + ADMIN),
        ("text/plain", ADMIN),
        ("multipart/form-data; boundary=b", b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\n' + ADMIN),
    ],
)
def test_writes_need_json(running: BrokerThread, api: Http, content_type: str, body: bytes) -> None:
    """What a cross-site form can send does not create an administrator."""
    reply = raw(running, "POST", "/api/definitions", body, {"Content-Type": content_type})
    assert reply.status == 415
    assert reply.body == {"error": "unsupported_media_type", "reason": NOT_JSON}
    assert api.get("/api/users/mallory").status == 404


def test_json_and_empty_writes_still_work(running: BrokerThread, api: Http) -> None:
    assert raw(running, "POST", "/api/definitions", ADMIN, {"Content-Type": "application/json"}).status == 204
    # rabbitmqadmin sends no Content-Type with an empty body
    assert raw(running, "PUT", "/api/vhosts/plain").status == 201
    assert raw(running, "DELETE", "/api/vhosts/plain").status == 204
    assert api.get("/api/users/mallory").status == 200


def test_cross_origin_requests_are_refused(running: BrokerThread) -> None:
    assert running.server is not None
    own = f"http://127.0.0.1:{running.server.management_port}"
    json_body = {"Content-Type": "application/json"}
    reply = raw(running, "PUT", "/api/vhosts/evil", b"{}", {**json_body, "Origin": "http://evil.example"})
    assert reply.status == 403
    assert reply.body == {"error": "forbidden", "reason": "cross-origin requests are not allowed"}
    assert raw(running, "GET", "/api/vhosts/evil").status == 404
    assert raw(running, "GET", "/api/overview", headers={"Origin": "null"}).status == 403
    assert raw(running, "PUT", "/api/vhosts/own", b"{}", {**json_body, "Origin": own}).status == 201


def test_host_names_not_ours_are_refused(running: BrokerThread) -> None:
    """A DNS-rebinding page reaches 127.0.0.1 under its own name: refused, UI and API alike."""
    for path in ("/api/overview", "/"):
        reply = raw(running, "GET", path, headers={"Host": "rebind.evil.example:15672"})
        assert reply.status == 403
        assert reply.body == {"error": "forbidden", "reason": "Host not allowed: add it to management_allowed_hosts"}
    for host in ("localhost:15672", "127.0.0.1", "[::1]:15672", "ui.localhost"):
        assert raw(running, "GET", "/api/overview", headers={"Host": host}).status == 200


def test_configured_host_names_are_allowed(start_broker: StartBroker) -> None:
    running = start_broker(management_port=0, management_allowed_hosts="broker.example, other.example")
    assert raw(running, "GET", "/api/overview", headers={"Host": "broker.example:15672"}).status == 200
    assert raw(running, "GET", "/api/overview", headers={"Host": "other.example"}).status == 200
    assert raw(running, "GET", "/api/overview", headers={"Host": "third.example"}).status == 403


def test_allowed_hosts_from_a_toml_list(tmp_path: Path) -> None:
    config_file = tmp_path / "lapine.toml"
    config_file.write_text('management_allowed_hosts = ["broker.example", "mq.example"]\n')
    config = Config(host="127.0.0.1", port=0, management_port=0, prometheus_port=-1, mqtt_port=-1, web_mqtt_port=-1)
    config.update_from_file(config_file)
    assert config.management_allowed_hosts == "broker.example,mq.example"
    with BrokerThread(config) as running:
        assert raw(running, "GET", "/api/overview", headers={"Host": "mq.example"}).status == 200


def test_failed_logins_wait_in_line_per_source_and_nobody_else_waits(
    running: BrokerThread, caplog: pytest.LogCaptureFixture
) -> None:
    finished: list[float] = []
    started = time.monotonic()

    def guess(password: str) -> None:
        assert raw(running, "GET", "/api/overview", password=password).status == 401
        finished.append(time.monotonic() - started)

    with caplog.at_level(logging.WARNING, logger="lapine.management"):
        guesses = [threading.Thread(target=guess, args=(f"wrong{n}",)) for n in range(3)]
        for thread in guesses:
            thread.start()
        time.sleep(0.2)
        # Another address (127.0.0.2 is loopback too) is served while the guesses wait.
        assert raw(running, "GET", "/api/overview", source="127.0.0.2").status == 200
        assert len(finished) == 0
        for thread in guesses:
            thread.join()
    # One source's failures are answered one after the other, each after the delay.
    assert sorted(finished)[-1] >= 3 * DELAY * 0.95
    assert caplog.text.count("HTTP access denied: user 'guest' - invalid credentials (from 127.0.0.1)") == 3
    assert "wrong" not in caplog.text


def test_names_in_log_lines_are_escaped(running: BrokerThread, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="lapine.management"):
        raw(running, "GET", "/api/overview", user="x\nINFO forged line\x1b[2J")
    assert "user 'x\\nINFO forged line\\x1b[2J' - invalid credentials" in caplog.text
    assert "\nINFO forged" not in caplog.text


def test_empty_passwords_never_log_in(running: BrokerThread, api: Http) -> None:
    """RabbitMQ refuses an empty password (rabbit_auth_backend_internal), over HTTP and AMQP."""
    assert api.put("/api/users/blank", {"password": "", "tags": "administrator"}).status == 201
    api.put("/api/permissions/%2F/blank", {"configure": ".*", "write": ".*", "read": ".*"})
    assert raw(running, "GET", "/api/overview", user="blank", password="").status == 401
    params = pika.URLParameters(running.url.replace("guest:guest", "blank:"))
    params.connection_attempts = 1
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(params)


def test_pbkdf2_password_hashing_option(start_broker: StartBroker) -> None:
    running = start_broker(management_port=0, password_hashing_module="lapine_password_hashing_pbkdf2_sha256")
    api = Http(running.management_url)
    assert api.put("/api/users/alice", {"password": "s3cret", "tags": "administrator"}).status == 201
    api.put("/api/permissions/%2F/alice", {"configure": ".*", "write": ".*", "read": ".*"})
    shown = api.get("/api/users/alice").body
    assert shown["hashing_algorithm"] == "lapine_password_hashing_pbkdf2_sha256"
    assert len(base64.b64decode(shown["password_hash"])) == 4 + 16 + 32
    alice = api.as_user("alice", "s3cret")
    assert alice.get("/api/whoami").body["name"] == "alice"
    assert api.as_user("alice", "wrong").get("/api/whoami").status == 401
    pika.BlockingConnection(pika.URLParameters(running.url.replace("guest:guest", "alice:s3cret"))).close()
    # The hash moves with the definitions: imported into a broker with RabbitMQ's default, it still logs in.
    exported = api.get("/api/definitions").body
    other = start_broker(management_port=0)
    assert Http(other.management_url).post("/api/definitions", exported).status == 204
    assert Http(other.management_url).as_user("alice", "s3cret").get("/api/whoami").status == 200


def test_unknown_hashing_module_stops_the_start() -> None:
    with pytest.raises(ValueError, match="password_hashing_module must be one of"):
        BrokerThread(management_port=-1, prometheus_port=-1, password_hashing_module="md4").start()
