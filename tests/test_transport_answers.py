"""How `callstream serve` writes its answers (receiver/transport.py): each answer with a Content-Length
leaves in one write, so the client receives it as one TCP segment, and nothing a client waits for is held
back: a HEAD answer, ``100 Continue``, pipelined answers in order.

Segments are counted on the client's socket (Linux ``TCP_INFO``: data segments received), so the tests see
what the network sees. uvicorn's own protocol writes a head and a body separately: two data segments per
answer, which fails the first test.
"""

from __future__ import annotations

import socket
import struct
import uuid
from collections.abc import Iterator

import orjson
import pytest

from tests.conftest import delete_prefix, new_prefix
from tests.support.processes import ServedReceiver

pytestmark = pytest.mark.slow

#: Offset of ``tcpi_data_segs_in`` (segments that carried data) in Linux's ``struct tcp_info``.
DATA_SEGS_IN_OFFSET = 152


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[ServedReceiver]:
    prefix = new_prefix()
    with ServedReceiver(tmp_path_factory.mktemp("answers"), redis_url, prefix, workers=1).start() as receiver:
        yield receiver
    delete_prefix(redis_url, prefix)


def data_segments_in(sock: socket.socket) -> int:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    count: int = struct.unpack_from("I", info, DATA_SEGS_IN_OFFSET)[0]
    return count


class Answers:
    """Reads HTTP/1.1 answers with a Content-Length off one connection, in order."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _more(self, what: str) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, f"connection closed in {what} after {self.buffer!r}"
        self.buffer += chunk

    def next(self, head_only: bool = False) -> tuple[bytes, bytes]:
        """The next answer: (head, body); with ``head_only`` (the answer to a HEAD request) no body."""
        while b"\r\n\r\n" not in self.buffer:
            self._more("a head")
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        length = 0 if head_only else int(header(head, b"content-length"))
        while len(self.buffer) < length:
            self._more("a body")
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return head, body


def header(head: bytes, name: bytes) -> bytes:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    raise AssertionError(f"no {name!r} header in {head!r}")


def connect(receiver: ServedReceiver) -> socket.socket:
    return socket.create_connection(("127.0.0.1", receiver.port), timeout=10)


def webhook(call_id: str, body: bytes | None = None, expect_continue: bool = False) -> tuple[bytes, bytes]:
    """A MiniVoice ``call.created`` for ``call_id``: (request head, body)."""
    body = body or orjson.dumps(
        {
            "event": "call.created",
            "created_at": "2026-12-03T10:00:00Z",
            "call": {"id": call_id, "status": "in_progress", "direction": "outbound"},
        }
    )
    head = (
        b"POST /webhooks/minivoice HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + b"Content-Length: %d\r\n" % len(body)
        + (b"Expect: 100-continue\r\n" if expect_continue else b"")
        + b"\r\n"
    )
    return head, body


def test_every_answer_arrives_as_one_segment(served: ServedReceiver) -> None:
    answers = 40
    with connect(served) as sock:
        answers_in = Answers(sock)
        before = data_segments_in(sock)
        for number in range(answers):
            if number % 2:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            else:
                head, body = webhook(f"seg-{uuid.uuid4().hex[:12]}")
                sock.sendall(head + body)
            status_line, content = answers_in.next()
            assert not answers_in.buffer
            assert status_line.startswith(b"HTTP/1.1 200 "), status_line
            assert orjson.loads(content)
        received = data_segments_in(sock) - before
    assert received == answers, f"{received} data segments for {answers} answers"


def test_a_head_answer_is_not_held_back(served: ServedReceiver) -> None:
    with connect(served) as sock:
        sock.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answers_in = Answers(sock)
        head, _ = answers_in.next(head_only=True)
        assert head.startswith(b"HTTP/1.1 200 ")
        assert int(header(head, b"content-length")) > 0
        # The connection is still usable, and the next answer is not mixed with the HEAD's.
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        head, body = answers_in.next()
        assert head.startswith(b"HTTP/1.1 200 ")
        assert orjson.loads(body)


def test_100_continue_is_sent_before_the_body_arrives(served: ServedReceiver) -> None:
    head, body = webhook(f"cont-{uuid.uuid4().hex[:12]}", expect_continue=True)
    with connect(served) as sock:
        sock.sendall(head)
        interim = sock.recv(65536)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        answer_head, content = Answers(sock).next()
        assert answer_head.startswith(b"HTTP/1.1 200 "), answer_head
        assert orjson.loads(content)


def test_pipelined_answers_come_back_whole_and_in_order(served: ServedReceiver) -> None:
    bad_head, bad_body = webhook("x", body=b"{not json")
    good_head, good_body = webhook(f"pipe-{uuid.uuid4().hex[:12]}")
    requests = [
        b"HEAD /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        bad_head + bad_body,
        b"GET /no/such/path HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        good_head + good_body,
    ]
    with connect(served) as sock:
        sock.sendall(b"".join(requests))
        answers_in = Answers(sock)
        statuses = []
        for number in range(len(requests)):
            head, _ = answers_in.next(head_only=number == 0)
            statuses.append(int(head.split(b" ", 2)[1]))
    assert statuses == [200, 400, 404, 200]
