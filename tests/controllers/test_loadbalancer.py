"""The pure rules of LoadBalancer addresses: which Services get one, and which address."""

from __future__ import annotations

from typing import Any

import pytest

from kubesvc.controllers.loadbalancer import (
    ingress_ips,
    parse_pool,
    pick_address,
    wants_address,
)

POOL = parse_pool("198.18.7.0/29")  # hosts .1 – .6


def svc(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "default"}, "spec": spec}


@pytest.mark.parametrize(
    ("spec", "wanted"),
    [
        ({"type": "LoadBalancer"}, True),
        ({"type": "LoadBalancer", "loadBalancerClass": "example.com/other"}, False),
        ({"type": "NodePort"}, False),
        ({}, False),
    ],
)
def test_which_services_get_an_address(spec: dict[str, Any], wanted: bool) -> None:
    assert wants_address(svc(**spec)) is wanted


@pytest.mark.parametrize(
    ("spec", "taken", "picked", "why"),
    [
        ({}, [], "198.18.7.1", ""),
        ({}, ["198.18.7.1", "198.18.7.2"], "198.18.7.3", ""),
        ({"loadBalancerIP": "198.18.7.5"}, [], "198.18.7.5", ""),
        (
            {"loadBalancerIP": "198.18.7.5"},
            ["198.18.7.5"],
            None,
            "requested loadBalancerIP 198.18.7.5 is in use by another Service",
        ),
        (
            {"loadBalancerIP": "10.0.0.1"},
            [],
            None,
            "requested loadBalancerIP 10.0.0.1 is not in the pool 198.18.7.0/29",
        ),
        (
            {},
            [f"198.18.7.{i}" for i in range(1, 7)],
            None,
            "no free address in the pool 198.18.7.0/29",
        ),
    ],
)
def test_pick_address(spec: dict[str, Any], taken: list[str], picked: str | None, why: str) -> None:
    assert pick_address(svc(type="LoadBalancer", **spec), POOL, taken) == (picked, why)


def test_a_single_address_pool_hands_out_that_address() -> None:
    assert pick_address(svc(type="LoadBalancer"), parse_pool("198.18.7.9/32"), []) == (
        "198.18.7.9",
        "",
    )


def test_ingress_ips_reads_the_status() -> None:
    obj = svc(type="LoadBalancer")
    obj["status"] = {
        "loadBalancer": {"ingress": [{"ip": "198.18.7.1"}, {"hostname": "lb.example"}]}
    }
    assert ingress_ips(obj) == ["198.18.7.1"]
    assert ingress_ips(svc()) == []


@pytest.mark.parametrize("text", ["garbage", "198.18.7.1/29", "198.18.7.0/33"])
def test_bad_pools_say_so(text: str) -> None:
    with pytest.raises(ValueError, match="--load-balancer-cidr"):
        parse_pool(text)
