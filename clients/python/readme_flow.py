"""The README's integrator flow, driven by the Python client openapi-python-client generates
from openapi/openapi.yaml (package `nexus_telemetry_client`), type-checked with `mypy --strict`:
create a host, issue a token, push a snapshot, read the typed 422, list hosts, read the metrics
without a range (the document makes it optional), read the auth-failure summary. No cast, no
hand-written field: every body is the generated models' own. tests/api/generated_client.rs runs
it against a live server with NEXUS_URL and NEXUS_ADMIN_TOKEN set, and checks what it stored.
"""

import datetime
import os

import httpx

from nexus_telemetry_client import AuthenticatedClient
from nexus_telemetry_client.api.admin import (
    create_host,
    get_host_metrics,
    issue_host_token,
    list_auth_failures,
    list_hosts,
)
from nexus_telemetry_client.api.agent import push_telemetry
from nexus_telemetry_client.models import (
    AuthFailureReport,
    Host,
    HostMetrics,
    HostPage,
    HostPayload,
    HostSeries,
    IssuedAgentToken,
    NewAgentToken,
    NewHost,
    Problem,
    Reason,
    TelemetryPayload,
)

URL = os.environ["NEXUS_URL"]


def client(bearer: str) -> AuthenticatedClient:
    # httpx's default of 5 s is short for a CI machine under load.
    return AuthenticatedClient(base_url=URL, token=bearer, timeout=httpx.Timeout(30.0))


def snapshot(cpu_percent: float) -> TelemetryPayload:
    return TelemetryPayload(
        recorded_at=datetime.datetime.now(datetime.timezone.utc),
        host=HostPayload(
            metrics=HostMetrics(
                cpu_percent=cpu_percent,
                memory_used_mb=2048,
                memory_total_mb=8192,
                load_average=0.42,
            )
        ),
    )


def main() -> None:
    admin = client(os.environ["NEXUS_ADMIN_TOKEN"])

    host = create_host.sync(client=admin, body=NewHost(name="py-web-01"))
    assert isinstance(host, Host), host
    issued = issue_host_token.sync(host.id, client=admin, body=NewAgentToken(name="agent"))
    assert isinstance(issued, IssuedAgentToken), issued
    assert issued.bind_fingerprint is False
    agent = client(issued.token)

    stored = push_telemetry.sync_detailed(client=agent, body=snapshot(12.34))
    assert stored.status_code == 204, stored

    refused = push_telemetry.sync_detailed(client=agent, body=snapshot(250.0))
    assert isinstance(refused.parsed, Problem), refused
    assert refused.parsed.status == 422
    assert refused.parsed.type_ == "tag:nexus-telemetry,2026:problem:validation"
    assert refused.parsed.errors[0].field == "host.metrics.cpu_percent"

    page = list_hosts.sync(client=admin, name="py-web")
    assert isinstance(page, HostPage), page
    assert [listed.name for listed in page.items] == ["py-web-01"]
    assert page.next_cursor is None

    # No range: the last hour, as the document says.
    series = get_host_metrics.sync(host.id, client=admin)
    assert isinstance(series, HostSeries), series
    assert len(series.points) == 1, series
    assert series.points[0].cpu_percent.max_ == 12.34, "read back as sent"
    assert series.points[0].load_average.min_ == 0.42, "read back as sent"
    assert series.since < series.until

    stranger = client("nxa_" + "0" * 64)
    unknown = push_telemetry.sync_detailed(client=stranger, body=snapshot(1.0))
    assert isinstance(unknown.parsed, Problem) and unknown.parsed.status == 401, unknown
    report = list_auth_failures.sync(client=admin)
    assert isinstance(report, AuthFailureReport), report
    invalid = [line for line in report.items if line.reason == Reason.INVALID]
    assert len(invalid) == 1, report
    assert invalid[0].last_token_id is None, "no token was identified"
    print(f"python client: host {host.id} round trip done")


if __name__ == "__main__":
    main()
