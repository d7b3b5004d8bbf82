"""The defaults the API writes back, per kind."""

from __future__ import annotations

from kubesvc.api.defaults import apply_defaults
from tests.api.objects import endpoint_slice, endpoints, namespace, pod, service


def test_service_defaults_follow_the_seed() -> None:
    obj = apply_defaults(service())
    spec = obj["spec"]
    # "为了方便，默认 targetPort 的取值与 port 字段相同" — and TCP by default.
    assert spec["ports"] == [{"protocol": "TCP", "port": 80, "targetPort": 9376}]
    assert spec["type"] == "ClusterIP"
    assert spec["sessionAffinity"] == "None"
    assert "sessionAffinityConfig" not in spec
    assert spec["ipFamilies"] == ["IPv4"]
    assert spec["ipFamilyPolicy"] == "SingleStack"
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert "externalTrafficPolicy" not in spec
    assert obj["status"] == {"loadBalancer": {}}


def test_target_port_defaults_to_port() -> None:
    spec = apply_defaults(service(ports=[{"name": "http", "port": 8080}]))["spec"]
    assert spec["ports"][0]["targetPort"] == 8080


def test_client_ip_affinity_timeout_defaults_to_three_hours() -> None:
    spec = apply_defaults(service(sessionAffinity="ClientIP"))["spec"]
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    spec = apply_defaults(
        service(
            sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}
        )
    )["spec"]
    assert spec["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] == 60


def test_node_port_and_load_balancer_defaults() -> None:
    spec = apply_defaults(service(type="NodePort"))["spec"]
    assert spec["externalTrafficPolicy"] == "Cluster"
    spec = apply_defaults(service(type="LoadBalancer"))["spec"]
    assert spec["allocateLoadBalancerNodePorts"] is True


def test_external_name_gets_no_ip_defaults() -> None:
    spec = apply_defaults(service(type="ExternalName", externalName="db.example.com", ports=[]))[
        "spec"
    ]
    assert "ipFamilies" not in spec and "ipFamilyPolicy" not in spec and "clusterIPs" not in spec


def test_cluster_ips_follow_cluster_ip_and_its_family() -> None:
    spec = apply_defaults(service(clusterIP="fd00::11"))["spec"]
    assert spec["clusterIPs"] == ["fd00::11"]
    assert spec["ipFamilies"] == ["IPv6"]


def test_pod_defaults() -> None:
    obj = apply_defaults(pod())
    spec = obj["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["enableServiceLinks"] is True
    container = spec["containers"][0]
    assert container["ports"][0]["protocol"] == "TCP"
    assert container["readinessProbe"] == {
        "httpGet": {"port": "http", "path": "/", "scheme": "HTTP"},
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    assert obj["status"]["phase"] == "Pending"


def test_image_pull_policy_depends_on_the_tag() -> None:
    def policy(image: str) -> str:
        obj = pod()
        obj["spec"]["containers"][0]["image"] = image
        return apply_defaults(obj)["spec"]["containers"][0]["imagePullPolicy"]

    assert policy("nginx") == "Always"
    assert policy("nginx:latest") == "Always"
    assert policy("nginx:1.27") == "IfNotPresent"
    assert policy("registry.local:5000/nginx") == "Always"


def test_endpoints_endpoint_slice_and_namespace_defaults() -> None:
    assert apply_defaults(endpoints())["subsets"][0]["ports"][0]["protocol"] == "TCP"
    port = apply_defaults(endpoint_slice())["ports"][0]
    assert port["protocol"] == "TCP"
    ns = apply_defaults(namespace())
    assert ns["spec"]["finalizers"] == ["kubernetes"]
    assert ns["status"]["phase"] == "Active"


def test_defaulting_leaves_what_the_user_set() -> None:
    obj = service(type="NodePort", sessionAffinity="ClientIP", internalTrafficPolicy="Local")
    obj["spec"]["ports"][0]["protocol"] = "UDP"
    spec = apply_defaults(obj)["spec"]
    assert spec["type"] == "NodePort"
    assert spec["internalTrafficPolicy"] == "Local"
    assert spec["ports"][0]["protocol"] == "UDP"
