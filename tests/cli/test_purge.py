"""``resilient cache purge``: exact counts, and what live caches see afterwards."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx
import pytest

from resilient import cached
from resilient.config import Settings
from resilient.middleware import ResilientWSGIMiddleware
from tests.cli.conftest import PASSWORD, run, run_json
from tests.support.redis_servers import RedisServer


def test_purge_tag_deletes_the_tagged_entries_as_the_cache_does(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three entries tagged user:2 (of two functions), one tagged user:1: purging user:2
    deletes exactly three, and the next calls recompute them."""
    monkeypatch.setenv("RESILIENT_CACHE_NAMESPACE", "app")
    monkeypatch.setenv("RESILIENT_CACHE_VERSION", "v2")
    calls: list[str] = []

    @cached(ttl=60, name="profile", tags=["user:{uid}"], backend=redis_server.url)
    def profile(uid: int, lang: str) -> str:
        calls.append(f"profile {uid} {lang}")
        return lang

    @cached(ttl=60, name="avatar", tags=["user:{uid}"], backend=redis_server.url)
    def avatar(uid: int) -> str:
        calls.append(f"avatar {uid}")
        return "png"

    for args in ((1, "en"), (2, "en"), (2, "fr")):
        profile(*args)
    avatar(2)
    assert run_json("cache", "purge", "--tag", "user:2", "--backend", redis_server.url) == {
        "tag": "user:2", "namespace": "app", "version": "v2", "listed": 3, "deleted": 3,
    }  # fmt: skip
    calls.clear()
    profile(1, "en")
    profile(2, "fr")
    avatar(2)
    assert calls == ["profile 2 fr", "avatar 2"]  # user:1 was kept
    status, text = run("cache", "purge", "--tag", "user:1", "--backend", redis_server.url)
    assert (status, text) == (0, "tag user:1: 1 entries deleted\n")


def test_purge_namespace_deletes_every_key_in_batches(redis_server: RedisServer) -> None:
    """2,345 keys of namespace app (more than one SCAN step), none of apple or others."""
    with redis_server.client() as client:
        client.mset({f"app:v1:f:{n}": b"x" for n in range(2345)})
        client.mset({"apple:v1:f:1": b"x", "other:app:1": b"x", "app": b"x"})
        result = run_json("cache", "purge", "--namespace", "app", "--backend", redis_server.url)
        assert result == {"namespace": "app", "deleted": 2345, "truncated": False}
        assert sorted(client.scan_iter()) == [b"app", b"apple:v1:f:1", b"other:app:1"]


def test_purge_namespace_is_bounded_by_the_limit(redis_server: RedisServer) -> None:
    """--limit stops the scan: fewer keys deleted, said so; a second run takes the rest."""
    with redis_server.client() as client:
        client.mset({f"app:{n}": b"x" for n in range(3000)})
        first = run_json(
            "cache", "purge", "--namespace", "app", "--limit", "1000",
            "--backend", redis_server.url,
        )  # fmt: skip
        assert first["truncated"] is True
        assert 0 < first["deleted"] < 3000
        assert client.dbsize() == 3000 - first["deleted"]
        rest = run_json("cache", "purge", "--namespace", "app", "--backend", redis_server.url)
        assert first["deleted"] + rest["deleted"] == 3000
        assert client.dbsize() == 0


def test_purge_namespace_takes_glob_characters_literally(redis_server: RedisServer) -> None:
    """A namespace named ``a*`` matches ``a*:...`` only, not every key starting with a."""
    with redis_server.client() as client:
        client.mset({"a*:1": b"x", "ab:1": b"x", "a:1": b"x"})
        assert run_json(
            "cache", "purge", "--namespace", "a*", "--backend", redis_server.url
        )["deleted"] == 1  # fmt: skip
        assert sorted(client.scan_iter()) == [b"a:1", b"ab:1"]
    assert run("cache", "purge", "--namespace", "", "--backend", redis_server.url)[0] == 2


def _vary_app(calls: list[str]) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        lang = environ.get("HTTP_ACCEPT_LANGUAGE", "")
        calls.append(f"{environ['PATH_INFO']} {lang}")
        start_response("200 OK", [("Cache-Control", "max-age=60"), ("Vary", "Accept-Language"),
                                  ("Content-Type", "text/plain")])  # fmt: skip
        return [lang.encode()]

    return app


def test_purge_url_removes_every_vary_variant(redis_server: RedisServer) -> None:
    """Two variants of /items?page=2 and one of /other: purging the first URL deletes its
    marker and both variants; the next requests reach the app, /other is still a hit."""
    calls: list[str] = []
    settings = Settings.from_env({"RESILIENT_BACKEND_URL": redis_server.url})
    app = ResilientWSGIMiddleware(_vary_app(calls), settings=settings)
    client = httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://shop.test")
    for lang in ("en", "fr", "en"):
        client.get("/items?page=2", headers={"Accept-Language": lang})
    client.get("/other", headers={"Accept-Language": "en"})
    assert len(calls) == 3
    result = run_json(
        "cache", "purge", "--url", "http://shop.test/items?page=2", "--backend", redis_server.url
    )
    assert (result["deleted"], result["variants_deleted"]) == (1, 2)
    assert result["url"] == "http://shop.test/items?page=2"
    calls.clear()
    for lang in ("en", "fr"):
        client.get("/items?page=2", headers={"Accept-Language": lang})
    client.get("/other", headers={"Accept-Language": "en"})
    assert calls == ["/items en", "/items fr"]
    status, text = run("cache", "purge", "--url", "http://shop.test/nothing", "--backend",
                       redis_server.url)  # fmt: skip
    assert (status, text) == (0, "http://shop.test/nothing: 0 response and 0 variants deleted\n")
    assert run("cache", "purge", "--url", "/items", "--backend", redis_server.url)[0] == 2


def test_purge_output_never_shows_the_password(
    secured: tuple[RedisServer, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Every purge, table and JSON, against a server with a password: none shows it."""
    _, url = secured
    texts = [
        run("cache", "purge", "--tag", "t", "--backend", url)[1],
        run("cache", "purge", "--namespace", "n", "--backend", url, "--json")[1],
        run("cache", "purge", "--url", "https://x.test/", "--backend", url)[1],
    ]
    assert texts[0] == "tag t: 0 entries deleted\n"
    captured = capsys.readouterr()
    assert all(PASSWORD not in text for text in [*texts, captured.out, captured.err])


def test_purge_tag_in_another_namespace_and_version(redis_server: RedisServer) -> None:
    """--cache-namespace and --cache-version name the caches' scope when it is not the
    configured one; the same tag in another scope is left alone."""

    @cached(
        ttl=60, name="a", namespace="shop", version="7", tags=["sale"], backend=redis_server.url
    )
    def in_shop(n: int) -> int:
        return n

    @cached(ttl=60, name="b", namespace="blog", tags=["sale"], backend=redis_server.url)
    def in_blog(n: int) -> int:
        return n

    for n in range(4):
        in_shop(n)
    in_blog(1)
    purge = ("cache", "purge", "--tag", "sale", "--backend", redis_server.url)
    assert run_json(*purge)["deleted"] == 0  # the configured scope: namespace "", no version
    shop = run_json(*purge, "--cache-namespace", "shop", "--cache-version", "7")
    assert (shop["namespace"], shop["version"], shop["deleted"]) == ("shop", "7", 4)
    assert run_json(*purge, "--cache-namespace", "blog")["deleted"] == 1
    wrong = ("cache", "purge", "--namespace", "shop", "--cache-version", "7")
    assert run(*wrong, "--backend", redis_server.url)[0] == 2
