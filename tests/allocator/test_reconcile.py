"""The repair loop's decisions (pure, table-driven)."""

from __future__ import annotations

from typing import Any

import pytest

from kubesvc.allocator.reconcile import (
    Claim,
    Held,
    ip_claims,
    ip_held,
    ip_wording,
    node_port_claims,
    plan_repair,
)
from kubesvc.allocator.records import Owner, ip_record

A = Owner("default", "a", "uid-a")
B = Owner("default", "b", "uid-b")
A_AGAIN = Owner("default", "a", "uid-a2")  # deleted and recreated under the same name
WORDS = ip_wording("127.96.0.0/24")


def in_range(ip: str) -> bool:
    return ip.startswith("127.96.0.")


def plan(
    claims: list[Claim[str]],
    held: list[Held[str]],
    *,
    leaks: dict[tuple[str, int], int] | None = None,
    records_rv: int = 100,
) -> Any:
    return plan_repair(
        claims, held, in_range, WORDS, records_rv=records_rv, leaks=leaks or {}, threshold=3
    )


def reasons(result: Any) -> list[tuple[str, str]]:
    return sorted((p.owner.name, p.reason) for p in result.problems)


def test_consistent_state_needs_nothing() -> None:
    result = plan([Claim("127.96.0.5", A)], [Held("127.96.0.5", A, 7)])
    assert (result.create, result.delete, result.problems, result.leaks) == ([], [], [], {})


@pytest.mark.parametrize(
    ("holder", "claims"),
    [
        pytest.param(Owner("default", "ghost", "g"), [], id="no-such-service"),
        pytest.param(A, [Claim("127.96.0.6", A)], id="service-holds-another-address"),
        pytest.param(A, [Claim("127.96.0.5", A_AGAIN)], id="service-recreated-same-name"),
        pytest.param(A, [Claim("127.96.0.5", B)], id="another-service-claims-it"),
        pytest.param(None, [], id="malformed-record"),
    ],
)
def test_a_leak_is_freed_on_the_third_consecutive_pass(
    holder: Owner | None, claims: list[Claim[str]]
) -> None:
    record = Held("127.96.0.5", holder, 7)
    leaks: dict[tuple[str, int], int] = {}
    for seen in (1, 2):
        result = plan(claims, [record], leaks=leaks)
        assert result.delete == [] and result.leaks == {("127.96.0.5", 7): seen}
        # A claimant of the leaked address waits for it to be freed.
        assert [c for c in result.create if c[0] == "127.96.0.5"] == []
        leaks = result.leaks
    result = plan(claims, [record], leaks=leaks)
    assert result.delete == [("127.96.0.5", 7)] and result.leaks == {}
    # The pass after, a claimant gets the freed address.
    after = plan(claims, [], leaks=result.leaks)
    assert [c for c in after.create if c[0] == "127.96.0.5"] == [
        (c.value, c.owner) for c in claims if c.value == "127.96.0.5"
    ]


def test_a_leak_that_heals_starts_counting_again() -> None:
    record = Held("127.96.0.5", A, 7)
    first = plan([], [record])
    healed = plan([Claim("127.96.0.5", A)], [record], leaks=first.leaks)
    assert healed.leaks == {}
    again = plan([], [record], leaks=healed.leaks)
    assert again.leaks == {("127.96.0.5", 7): 1} and again.delete == []


def test_a_rewritten_record_is_a_new_leak() -> None:
    leaks = {("127.96.0.5", 7): 2}
    result = plan([], [Held("127.96.0.5", A, 9)], leaks=leaks)
    assert result.delete == [] and result.leaks == {("127.96.0.5", 9): 1}


def test_a_missing_record_is_recreated_for_its_service() -> None:
    result = plan([Claim("127.96.0.5", A, "2024-01-01T00:00:00Z", 50)], [])
    assert result.create == [("127.96.0.5", A)]
    assert reasons(result) == [("a", "ClusterIPNotAllocated")]
    assert result.problems[0].message == "Cluster IP [IPv4]:127.96.0.5 is not allocated; repairing"


def test_a_claim_newer_than_the_record_list_waits_a_pass() -> None:
    result = plan([Claim("127.96.0.5", A, "", 101)], [], records_rv=100)
    assert (result.create, result.problems) == ([], [])


def test_duplicates_without_a_record_go_to_the_oldest() -> None:
    claims = [
        Claim("127.96.0.5", B, "2024-02-01T00:00:00Z", 10),
        Claim("127.96.0.5", A, "2024-01-01T00:00:00Z", 20),
    ]
    result = plan(claims, [])
    assert result.create == [("127.96.0.5", A)]
    assert reasons(result) == [("a", "ClusterIPNotAllocated"), ("b", "ClusterIPAlreadyAllocated")]


def test_duplicates_with_a_record_report_every_claimant_but_the_holder() -> None:
    claims = [Claim("127.96.0.5", A, "2024-01-01T00:00:00Z"), Claim("127.96.0.5", B, "2024")]
    result = plan(claims, [Held("127.96.0.5", B, 7)])
    assert reasons(result) == [("a", "ClusterIPAlreadyAllocated")]
    assert result.problems[0].message == (
        "Cluster IP [IPv4]:127.96.0.5 was assigned to multiple services; please recreate service"
    )
    assert (result.create, result.delete) == ([], [])


def test_out_of_range_is_reported_never_recreated_and_its_record_kept() -> None:
    result = plan([Claim("10.0.0.5", A)], [Held("10.0.0.5", A, 7)])
    assert reasons(result) == [("a", "ClusterIPOutOfRange")]
    assert result.problems[0].message == (
        "Cluster IP [IPv4]:10.0.0.5 is not within the configured range 127.96.0.0/24; "
        "please recreate service"
    )
    assert (result.create, result.delete, result.leaks) == ([], [], {})
    assert plan([Claim("10.0.0.6", B)], []).create == []


def test_claims_and_records_are_read_from_objects() -> None:
    services = [
        {
            "metadata": {
                "name": "a",
                "namespace": "default",
                "uid": "uid-a",
                "resourceVersion": "5",
            },
            "spec": {
                "type": "NodePort",
                "clusterIPs": ["127.96.0.5"],
                "ports": [{"nodePort": 30001}],
            },
        },
        {"metadata": {"name": "h", "namespace": "default"}, "spec": {"clusterIP": "None"}},
        {
            "metadata": {"name": "x", "namespace": "default"},
            "spec": {"type": "ExternalName", "clusterIP": "127.96.0.9"},
        },
    ]
    assert ip_claims(services) == [Claim("127.96.0.5", A, "", 5)]
    assert node_port_claims(services) == [Claim(30001, A, "", 5)]
    record = ip_record("127.96.0.5", A)
    record["metadata"]["resourceVersion"] = "6"
    assert ip_held([record]) == [Held("127.96.0.5", A, 6)]
