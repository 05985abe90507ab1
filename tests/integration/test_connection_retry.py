"""A request whose connection was lost is retried later and on a new connection (``IndexClient``).

The upstream is a loopback HTTP/2 server (cleartext, prior knowledge) that resets the first streams
it is asked for (RST_STREAM), as a caching front did: the connection stays up, and httpx would send
the retry on it. The server counts the connections it accepted and the streams it reset. No Prefect.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.errors
import h2.events
import httpx
import pytest

from mirrorflow.tasks.index_client import IndexClient, TransientError
from mirrorflow.tasks.retrying import call_with_retries

PAGE = json.dumps({"meta": {"api-version": "1.0"}, "name": "foo", "files": []}).encode()


@dataclass
class ResettingServer:
    """Answers every stream with ``PAGE``, except the first ``resets``, which it resets."""

    resets: int
    sock: socket.socket = field(default_factory=socket.socket)
    accepted: int = 0
    reset_streams: int = 0
    answered: list[int] = field(default_factory=list)  # the connection (1, 2, ...) of each answer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/simple/"

    def start(self) -> None:
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:  # closed: the test is over
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(raw, self.accepted), daemon=True).start()

    def _serve(self, raw: socket.socket, number: int) -> None:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        with raw:
            raw.sendall(conn.data_to_send())
            while data := raw.recv(65536):
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        if self.reset_streams < self.resets:
                            self.reset_streams += 1
                            conn.reset_stream(event.stream_id, error_code=h2.errors.ErrorCodes.INTERNAL_ERROR)
                        else:
                            headers = [
                                (":status", "200"),
                                ("content-type", "application/vnd.pypi.simple.v1+json"),
                            ]
                            conn.send_headers(event.stream_id, headers)
                            conn.send_data(event.stream_id, PAGE, end_stream=True)
                            self.answered.append(number)
                raw.sendall(conn.data_to_send())


@pytest.fixture
def resetting() -> Iterator[ResettingServer]:
    server = ResettingServer(resets=2)
    server.start()
    yield server
    server.sock.close()


def _h2_client() -> httpx.Client:
    return httpx.Client(http1=False, http2=True, timeout=10)  # HTTP/2 without TLS: prior knowledge


def _get_with_retries(index: IndexClient, waits: list[float]) -> object:
    return call_with_retries(
        lambda: index.get_project("foo"),
        attempts=4,
        transient=(TransientError,),
        connection_backoff=2.0,
        sleep=waits.append,
    )


def test_a_reset_stream_is_retried_seconds_later_on_a_new_connection(resetting):
    waits: list[float] = []
    fresh_clients: list[httpx.Client] = []

    def fresh() -> httpx.Client:
        fresh_clients.append(_h2_client())
        return fresh_clients[-1]

    with _h2_client() as pooled:
        index = IndexClient(resetting.url, client=pooled, fresh_client=fresh)
        page = _get_with_retries(index, waits)
        assert page.name == "foo"
        # One connection for the first try, a new one for each retry; the answer came on the third.
        assert (resetting.accepted, resetting.reset_streams, resetting.answered) == (3, 2, [3])
        assert all(client.is_closed for client in fresh_clients) and len(fresh_clients) == 2
        assert 1.0 <= waits[0] <= 2.0 and 2.0 <= waits[1] <= 4.0, waits  # seconds, not milliseconds
        # Later requests go back to the pooled connection, which the resets left open.
        assert index.get_project("foo").name == "foo"
        assert (resetting.accepted, resetting.answered) == (3, [3, 1])


def test_without_a_fresh_client_the_retry_reuses_the_reset_connection(resetting):
    """The control: what the retry did before, and what the test above tells apart."""
    waits: list[float] = []
    with _h2_client() as pooled:
        index = IndexClient(resetting.url, client=pooled)
        assert _get_with_retries(index, waits).name == "foo"
    assert (resetting.accepted, resetting.reset_streams, resetting.answered) == (1, 2, [1])


def test_a_reset_stream_is_a_transient_error_that_lost_its_connection(resetting):
    with _h2_client() as pooled, pytest.raises(TransientError) as raised:
        IndexClient(resetting.url, client=pooled).get_project("foo")
    assert raised.value.connection_lost and raised.value.status is None
    assert "RemoteProtocolError" in raised.value.reason
