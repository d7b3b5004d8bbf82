"""200 concurrent Service creates over HTTPS against a /28: exactly the free addresses succeed."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import ssl
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.allocator.conftest import SMALL_CIDR, start_with_flags
from tests.apiserver.conftest import stop_cluster

CREATES = 200
SVC = "/api/v1/namespaces/default/services"


def service(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80}], **spec},
    }


async def test_concurrent_creates_fill_the_range_exactly(tmp_path: Path) -> None:
    cluster = start_with_flags(tmp_path / "concurrent", "--service-cidr", SMALL_CIDR)
    try:
        network = ipaddress.ip_network(SMALL_CIDR)
        # Every address but the network, the broadcast and the `kubernetes` Service's.
        free = network.num_addresses - 2 - 1
        ssl_context = ssl.create_default_context(cafile=str(cluster.ca_file))
        connector = aiohttp.TCPConnector(ssl=ssl_context, limit=CREATES)
        headers = {"Authorization": f"Bearer {cluster.token}"}
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

            async def post(body: dict[str, Any]) -> tuple[int, Any]:
                async with session.post(cluster.url + SVC, json=body) as resp:
                    return resp.status, json.loads(await resp.read())

            # Neither takes an address: the count below would be off by one if they did.
            assert (await post(service("headless", clusterIP="None")))[0] == 201
            external = service("alias", type="ExternalName", externalName="example.com")
            assert (await post(external))[0] == 201

            started = time.monotonic()
            results = await asyncio.gather(*(post(service(f"c{i}")) for i in range(CREATES)))
            elapsed = time.monotonic() - started
        made = [body for status, body in results if status == 201]
        refused = [body for status, body in results if status != 201]
        print(f"{CREATES} concurrent creates on {SMALL_CIDR}: {elapsed:.2f} s")
        assert len(made) == free, [b.get("message") for b in refused[:3]]
        ips = [b["spec"]["clusterIP"] for b in made]
        assert len(set(ips)) == len(ips) == free
        assert {ipaddress.ip_address(ip) for ip in ips} == set(network.hosts()) - {
            network.network_address + 1
        }
        assert len(refused) == CREATES - free
        for body in refused:
            assert body["code"] == 422 and body["reason"] == "Invalid"
            assert "failed to allocate a serviceIP: range is full" in body["message"]
            assert SMALL_CIDR in body["message"]
        _, listed, _ = cluster.request("GET", "/api/v1/services")
        assert len(listed["items"]) == free + 3  # + kubernetes, headless, alias
    finally:
        stop_cluster(cluster.process)
