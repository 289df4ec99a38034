"""Schemathesis against the OpenAPI document the running server publishes at /openapi.json.

Every documented operation is fuzzed with schema-conforming (positive) and schema-violating
(negative) requests. Checks: no 5xx, only documented status codes, content types and
response bodies. Schemathesis cannot sign, so nothing may ever be stored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from tests.conftest import count_rows
from tests.reliability.conftest import soak_scale
from tests.reliability.server import ReliabilityServer

schemathesis = pytest.importorskip("schemathesis")
requests = pytest.importorskip("requests")

from schemathesis import checks  # noqa: E402 - after the import guard

pytestmark = pytest.mark.e2e

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReliabilityServer]:
    server = ReliabilityServer(tmp_path_factory.mktemp("openapi"), body_limit=64 * 1024)
    server.start()
    try:
        yield server
        assert server.alive()
    finally:
        if server.process is not None:
            server.stop()


def _fuzz_operation(
    server: ReliabilityServer,
    session: Any,  # requests.Session; both modules come from importorskip
    operation: Any,  # schemathesis.APIOperation
    mode: Any,  # schemathesis.GenerationMode
    examples: int,
    seen: Counter[str],
) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:  # schemathesis.Case
        response = case.call(base_url=server.url, session=session, timeout=15)
        seen[f"{operation.label} {response.status_code}"] += 1
        case.validate_response(response, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:
        # No schema-violating request exists for an operation without inputs.
        assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label


def _fuzz(server: ReliabilityServer, examples: int) -> Counter[str]:
    """Run every operation in both generation modes; returns status counts per operation."""
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {"POST /webhook/{provider}", "GET /healthz"}
    seen: Counter[str] = Counter()
    with requests.Session() as session:
        for operation in operations:
            for mode in schemathesis.GenerationMode:
                _fuzz_operation(server, session, operation, mode, examples, seen)
    assert count_rows(str(server.db), "webhooks") == 0, "an unsigned request was stored"
    return seen


def _total(seen: Counter[str]) -> int:
    return sum(seen.values())


def test_schemathesis_finds_no_5xx_or_undocumented_answer(
    api: ReliabilityServer, record_figures: Callable[..., None]
) -> None:
    seen = _fuzz(api, 60)
    assert not [key for key in seen if key.rsplit(" ", 1)[1].startswith("5")]
    record_figures(requests=_total(seen), statuses=dict(seen))


@pytest.mark.soak
@pytest.mark.timeout(7200)
def test_soak_schemathesis(api: ReliabilityServer, record_figures: Callable[..., None]) -> None:
    seen = _fuzz(api, int(10_000 * soak_scale()))
    record_figures(requests=_total(seen), statuses=dict(seen))
