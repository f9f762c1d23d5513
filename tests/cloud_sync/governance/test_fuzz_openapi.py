"""The OpenAPI schema fuzzed with schemathesis against the real app (real SQLite and PostgreSQL stores): every
operation, as an admin, with data valid under its schema and data that is not (wrong types, out of range,
missing fields); no 5xx, invalid input refused with a 4xx, answers conform to the documented schema, status codes
and content types. Examples per operation are few (``FUZZ_EXAMPLES``) to keep CI time small; run with
``FLEET_FUZZ_EXAMPLES=500`` for a deeper search."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings

schemathesis = pytest.importorskip("schemathesis")
from schemathesis import checks  # noqa: E402

from cloud_sync.main import create_app  # noqa: E402
from cloud_sync.settings import Settings  # noqa: E402
from tests.cloud_sync.governance.conftest import ADMIN_TOKEN, STAFF_TOKEN  # noqa: E402

FUZZ_EXAMPLES = int(os.environ.get("FLEET_FUZZ_EXAMPLES", "8"))
#: Operations whose input has no invalid form in the schema (any bytes are a body): valid data only.
POSITIVE_ONLY = frozenset({("POST", "/v1/batches")})
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_openapi_fuzz_no_5xx_and_no_schema_violations(engine, tmp_path):
    # schemathesis' own pytest loader (from_fixture) does not run under pytest 9: drive hypothesis directly,
    # one property per operation.
    settings_ = Settings(environment="production", admin_token=ADMIN_TOKEN, staff_token=STAFF_TOKEN,
                         max_batch_bytes=64 << 10, ca_dir=tmp_path / "ca")
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(settings_, engine))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:

        strategy = operation.as_strategy()
        if (operation.method.upper(), operation.path) not in POSITIVE_ONLY:
            strategy |= operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE)

        @given(case=strategy)
        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case) -> None:
            # positive_data_acceptance expects every schema-valid body to be accepted: a batch's schema
            # is "bytes", and random bytes are rightly refused (400, bad_magic) by signature checks.
            # ignored_auth: every call here is an admin's; test_access_walk sends every route without a token.
            case.call_and_validate(headers=ADMIN,
                                   excluded_checks=[checks.positive_data_acceptance, checks.ignored_auth])

        fuzz()
