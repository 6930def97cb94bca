"""``resilient demo`` on the in-memory default: figures, report, errors, clean exit."""

from __future__ import annotations

import io
import logging
import multiprocessing
import re
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from resilient import _demo, _demo_servers
from resilient._demo_app import Upstream, items_app
from resilient._demo_load import ERROR, Client, Record, drive
from resilient._demo_report import Summary, percentile
from resilient.cli import main
from tests.demo.support import assert_consistent, summary
from tests.support.redis_servers import free_port
from tests.support.sockets import HungServer

RUN_PART = re.compile(r"\d+-[0-9a-f]{8}")  # the run's unique part of names in the backend


@pytest.fixture(scope="module")
def short_run() -> str:
    """One short default run (2 s: 1 s without resilient, 1 s with), shared by tests."""
    out = io.StringIO()
    assert main(["demo", "--duration", "2"], out) == 0
    return out.getvalue()


def test_short_run_figures_are_consistent_and_show_each_feature(short_run: str) -> None:
    """Every request sent is counted once; the cache saves upstream calls and answers
    some requests; the greedy client meets the limit; the forced outage trips the breaker."""
    rows = summary(short_run)
    assert_consistent(rows)
    without, with_ = rows["upstream calls"]
    assert with_ < without
    assert rows["cache hit ratio"][1] > 0
    assert rows["cache hit ratio"][0] == 0
    assert rows["rate limited (429)"] == (0, rows["rate limited (429)"][1])
    assert rows["rate limited (429)"][1] > 0
    assert rows["breaker trips"][0] == 0
    assert rows["breaker trips"][1] >= 1
    assert rows["latency p50"][1] < rows["latency p50"][0]


def test_output_names_what_a_user_would_name(short_run: str) -> None:
    """The breaker is 'upstream', never its name in the backend, which carries the run."""
    assert "breaker 'upstream'" in short_run
    assert "demo." not in short_run
    assert RUN_PART.search(short_run) is None


def test_breaker_transitions_are_shown_with_the_shown_name(short_run: str) -> None:
    """The breaker's transitions (it logs them) are lines of the display, named 'upstream';
    the logger is as it was afterwards."""
    assert re.search(r"^  +[\d.]+ s  breaker 'upstream': closed -> open$", short_run, re.MULTILINE)
    logger = logging.getLogger("resilient.breaker")
    assert (logger.handlers, logger.filters, logger.propagate) == ([], [], True)


def test_progress_is_plain_lines_without_a_terminal(short_run: str) -> None:
    """No carriage returns when the output is not a terminal (CI logs stay readable)."""
    assert "\r" not in short_run
    assert re.search(r"^  with resilient\s+1\.0/1\.0 s", short_run, re.MULTILINE)


def test_progress_is_one_updating_line_on_a_terminal() -> None:
    """On a terminal the figures rewrite one line per run; a breaker transition is a line
    of its own above it."""
    out = io.StringIO()
    assert _demo.run_demo("memory://", out, duration=1, tty=True) == 0
    text = out.getvalue()
    segments = text.split("\n")
    lines = [n for n, line in enumerate(segments) if "x 503" in line]
    for n in lines:  # figures are rewritten in place, or redrawn right below a note
        assert "\r\x1b[K" in segments[n] or "breaker 'upstream': " in segments[n - 1]
    notes = text.count("breaker 'upstream': ")
    assert notes >= 1
    assert 2 <= len(lines) <= 2 + notes


def test_html_report_is_self_contained_with_a_chart(tmp_path: Path) -> None:
    """--html writes one page: the table and an inline SVG chart, no external assets."""
    report = tmp_path / "report.html"
    out = io.StringIO()
    assert main(["demo", "--duration", "1", "--html", str(report)], out) == 0
    text = report.read_text()
    assert text.count("<svg") == 1
    assert "<polyline" in text
    assert "upstream calls saved" in text
    assert not re.search(r"<script|<link|<img|url\(|src=", text)
    assert f"report written to {report}" in out.getvalue()


def test_unreachable_backend_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """A backend that refuses: one line with the URL masked, exit status 1."""
    port = free_port()
    url = f"redis://:hunter2@127.0.0.1:{port}/0"
    assert main(["demo", "--backend", url, "--duration", "1"]) == 1
    captured = capsys.readouterr()
    assert captured.err == (
        f"resilient demo: cannot reach redis://:***@127.0.0.1:{port}/0 (Connection refused)\n"
    )
    assert captured.out == ""


def test_workers_on_memory_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """Several processes on memory:// would each count alone: refused in one line."""
    assert main(["demo", "--workers", "2", "--backend", "memory://"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("resilient demo: --workers 2 needs a shared backend")


def test_bad_duration_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """A duration of zero is a one-line error, not a demo of nothing."""
    assert main(["demo", "--duration", "0"]) == 2
    assert capsys.readouterr().err == (
        "resilient demo: --duration must be a positive number of seconds\n"
    )


def test_everything_started_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    """After the demo no thread of its own runs and its ports are closed."""
    ports: list[int] = []
    real = _demo_servers.Servers

    def recording(*args: Any, **kwargs: Any) -> Any:
        servers = real(*args, **kwargs)
        ports.extend(servers.ports)
        return servers

    monkeypatch.setattr(_demo, "Servers", recording)
    before = set(threading.enumerate())
    assert main(["demo", "--duration", "1"], io.StringIO()) == 0
    assert set(threading.enumerate()) - before == set()
    assert multiprocessing.active_children() == []
    assert len(ports) == 2
    for port in ports:
        with pytest.raises(ConnectionRefusedError), socket.socket() as sock:
            sock.connect(("127.0.0.1", port))


def test_summary_counts_each_status_once() -> None:
    """The figures come from the record: statuses, cache hits and latencies."""
    record = Record()
    seen = [(200, 0.001, True), (200, 0.030, False), (429, 0.001, False),
            (503, 0.002, False), (502, 0.040, False), (0, 5.0, False)]  # fmt: skip
    for status, latency, hit in seen:
        record.add(status, latency, hit)
    result = Summary.of("x", record, upstream_calls=3, trips=1, seconds=1.0)
    assert (result.sent, result.served, result.limited, result.rejected, result.failed) == (
        6, 2, 1, 1, 2,
    )  # fmt: skip
    assert result.hit_ratio == 1 / 5  # the 429 never reached the cache
    assert (result.p50, result.p99) == (0.002, 5.0)
    assert percentile([], 0.5) == 0.0


def test_a_request_without_answer_counts_as_an_error() -> None:
    """No server on the port: every request is recorded, as an error, none lost."""
    clients = (Client("a", 40.0), Client("b", 40.0))
    record = drive([free_port()], 0.3, clients=clients)
    assert record.statuses
    assert set(record.statuses) == {ERROR}
    result = Summary.of("x", record, upstream_calls=0, trips=0, seconds=0.3)
    assert (result.failed, result.served) == (result.sent, 0)


def test_the_app_serves_items_only() -> None:
    """GET /items/{id} reaches the upstream; other paths and methods are 404s without it."""
    epoch = multiprocessing.get_context("spawn").Value("d", float("inf"))
    upstream = Upstream(_demo.plan_for(1.0, "memory://", "t", 1), epoch)
    app = items_app(upstream)
    seen: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], *_: object) -> Any:
        seen.append(status)

    for method, path in (("GET", "/items/7"), ("GET", "/other"), ("POST", "/items/7")):
        b"".join(app({"REQUEST_METHOD": method, "PATH_INFO": path}, start_response))
    assert seen[1:] == ["404 Not Found", "404 Not Found"]
    assert seen[0] in ("200 OK", "502 Bad Gateway")  # 5% of calls fail
    assert upstream.calls == 1


def test_a_backend_that_never_answers_is_one_line(
    hung_server: HungServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A server that accepts and never answers: the operation timeout, then one line."""
    url = f"redis://127.0.0.1:{hung_server.port}/0"
    assert main(["demo", "--backend", url]) == 1
    assert capsys.readouterr().err == f"resilient demo: cannot reach {url} (timed out)\n"


def test_a_report_that_cannot_be_written_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--html into a missing directory: the table is printed, then one line, exit 1."""
    report = tmp_path / "missing" / "report.html"
    assert main(["demo", "--duration", "1", "--html", str(report)]) == 1
    captured = capsys.readouterr()
    assert "upstream calls saved" in captured.out
    assert captured.err == f"resilient demo: cannot write {report} (No such file or directory)\n"
