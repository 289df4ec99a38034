"""``payhook serve`` tunes the garbage collector once everything is loaded, raises the limit on
open descriptors and puts the HTTP limits in front of uvicorn's parser."""

from __future__ import annotations

import gc
import resource
import weakref
from collections.abc import Iterator

import pytest
from starlette.types import Receive, Scope, Send

from payhook.config import parse_settings
from payhook.server.protocol import HttpLimits, LimitedHttpToolsProtocol
from payhook.server.run import (
    DESCRIPTOR_RESERVE,
    GC_YOUNG_THRESHOLD,
    connection_cap,
    raise_descriptor_limit,
    server_config,
    tune_gc,
)


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_tune_gc_freezes_what_is_loaded_and_collects_young_objects_less_often() -> None:
    gc.unfreeze()
    _, middle, old = gc.get_threshold()
    tune_gc()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, middle, old)


@pytest.mark.usefixtures("restored_gc")
def test_cycles_are_still_collected_after_tuning() -> None:
    tune_gc()

    class Node:
        def __init__(self) -> None:
            self.other: Node | None = None

    collected: list[str] = []
    a, b = Node(), Node()
    a.other, b.other = b, a
    weakref.finalize(a, collected.append, "a")
    del a, b
    gc.collect(0)
    assert collected == ["a"]


@pytest.fixture
def restored_descriptor_limit() -> Iterator[tuple[int, int]]:
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield limits
    resource.setrlimit(resource.RLIMIT_NOFILE, limits)


def test_serve_raises_the_descriptor_soft_limit_to_the_hard_limit(
    restored_descriptor_limit: tuple[int, int],
) -> None:
    _, hard = restored_descriptor_limit
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard limit on open descriptors here")
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 512), hard))
    assert raise_descriptor_limit() == hard
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)


def test_the_derived_connection_cap_leaves_descriptors_for_the_database_logs_and_threads() -> None:
    assert connection_cap(0, 1024) == 1024 - DESCRIPTOR_RESERVE
    assert connection_cap(0, 65_536) == 65_536 - DESCRIPTOR_RESERVE
    assert connection_cap(0, 256) == 128  # a small limit: half of it


def test_a_configured_connection_cap_is_kept_unless_the_descriptors_cannot_hold_it() -> None:
    assert connection_cap(100, 65_536) == 100
    assert connection_cap(5000, 1024) == 1024 - DESCRIPTOR_RESERVE


def test_the_server_config_puts_the_configured_limits_in_front_of_httptools() -> None:
    settings = parse_settings(
        {
            "server": {
                "port": 9999,
                "max_header_bytes": 8192,
                "head_timeout_seconds": 2.5,
                "body_timeout_seconds": 7,
                "keepalive_timeout_seconds": 1.5,
                "max_connections": 300,
            }
        }
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("not called")

    config = server_config(app, settings.server, descriptor_limit=4096)
    protocol = config.http
    assert isinstance(protocol, type)
    assert issubclass(protocol, LimitedHttpToolsProtocol)
    assert protocol.limits == HttpLimits(
        max_header_bytes=8192,
        head_timeout_seconds=2.5,
        body_timeout_seconds=7.0,
        max_connections=300,
    )
    assert config.timeout_keep_alive == 1.5
    assert (config.host, config.port) == ("127.0.0.1", 9999)
    assert config.ws == "none"
