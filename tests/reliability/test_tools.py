"""The suite's own switch: skipped with a reason where a tool is missing, failed in CI."""

from __future__ import annotations

import pytest

from tests.reliability import processes
from tests.reliability.conftest import need_tools
from tests.support import redis_servers

pytestmark = pytest.mark.reliability


def test_missing_nginx_skips_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processes, "NGINX", None)
    monkeypatch.setattr(redis_servers, "REQUIRE", False)
    with pytest.raises(pytest.skip.Exception, match=r"nginx \(apt-get install nginx\)"):
        need_tools()


def test_missing_nginx_fails_where_real_servers_are_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(processes, "NGINX", None)
    monkeypatch.setattr(redis_servers, "REQUIRE", True)
    with pytest.raises(pytest.fail.Exception, match=r"nginx.*required here"):
        need_tools()


def test_missing_redis_server_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_servers, "REDIS_SERVER", None)
    monkeypatch.setattr(redis_servers, "REQUIRE", False)
    with pytest.raises(pytest.skip.Exception, match="redis-server"):
        need_tools()
