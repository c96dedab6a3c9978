"""The attack of issue 11 kept in the suite: schemathesis generates requests for every operation of
the ledger's OpenAPI document, valid and invalid, and runs all its checks on the answers of a
real ledger on loopback: no 5xx, every status, content type and body as documented."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.config._checks import PositiveDataAcceptanceConfig

pytestmark = pytest.mark.slow

EXAMPLES = 40  # per operation: the whole run stays well under two minutes


@pytest.fixture
def ledger_backend() -> str:
    """SQLite only (the PostgreSQL backend is covered by the rest of the API suite)."""
    return "sqlite"


def test_every_operation_survives_generated_requests(ledger):
    schema = schemathesis.openapi.from_url(f"{ledger.url}/openapi.json")
    # All checks. A schema-valid body may still name a run, checkpoint or task that does not exist
    # (or a path outside the checkpoint root): the ledger answers that 422 naming the field, so
    # "positive data" may also be refused with 422; everything else keeps its default expectation.
    schema.config.checks.positive_data_acceptance = PositiveDataAcceptanceConfig(
        expected_statuses=["2XX", "401", "403", "404", "409", "422"]
    )
    # the admin token passes every scope, so the checks see each route's own answers
    headers = {"Authorization": f"Bearer {ledger.admin_token}"}
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 20
    for op in operations:

        @given(case=op.as_strategy())
        @settings(
            max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def run(case) -> None:
            case.call_and_validate(base_url=ledger.url, headers=headers)

        try:
            run()
        except (Exception, BaseExceptionGroup) as e:  # one operation's failure must not hide the others'
            failures[op.label] = str(e)[:3000]
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items()) + "\n" + ledger.log_tail()
