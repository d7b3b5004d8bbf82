"""Indexes that answer "which Services could select this pod" and "which pods does this select".

Service selectors are maps, all terms equalities, so an object can match only
if it carries each of the selector's pairs. Both questions are answered from
(namespace, key, value) → object keys, instead of testing every object.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from kubesvc.client.informer import Informer, object_key
from kubesvc.controllers.backends import pod_is_ready

Obj = dict[str, Any]
Pair = tuple[str, str, str]  # namespace, label key, label value


class PairIndex:
    def __init__(self) -> None:
        self._by_pair: dict[Pair, set[str]] = defaultdict(set)
        self._pairs_of: dict[str, list[Pair]] = {}

    def put(self, key: str, pairs: list[Pair]) -> None:
        self.remove(key)
        for pair in pairs:
            self._by_pair[pair].add(key)
        self._pairs_of[key] = pairs

    def remove(self, key: str) -> None:
        for pair in self._pairs_of.pop(key, []):
            keys = self._by_pair.get(pair)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_pair[pair]

    def keys_with(self, pair: Pair) -> set[str]:
        return self._by_pair.get(pair, set())


def _namespace(obj: Obj) -> str:
    return obj["metadata"].get("namespace", "")


class ServiceSelectorIndex:
    """Services under one pair of their selector (a pod must carry every pair)."""

    def __init__(self) -> None:
        self._index = PairIndex()

    def update(self, service: Obj) -> None:
        selector = (service.get("spec") or {}).get("selector")
        pairs: list[Pair] = []
        if isinstance(selector, dict) and selector:
            key, value = min(selector.items())
            pairs = [(_namespace(service), key, value)]
        self._index.put(object_key(service), pairs)

    def remove(self, key: str) -> None:
        self._index.remove(key)

    def candidates(self, pod: Obj) -> set[str]:
        """Keys of Services whose selector may match `pod` (a superset: check before use)."""
        ns = _namespace(pod)
        out: set[str] = set()
        for k, v in (pod["metadata"].get("labels") or {}).items():
            out |= self._index.keys_with((ns, k, v))
        return out


class PodLabelIndex:
    """Pods under each of their labels."""

    def __init__(self) -> None:
        self._index = PairIndex()

    def update(self, pod: Obj) -> None:
        ns = _namespace(pod)
        labels = pod["metadata"].get("labels") or {}
        self._index.put(object_key(pod), [(ns, k, v) for k, v in labels.items()])

    def remove(self, key: str) -> None:
        self._index.remove(key)

    def selected(self, namespace: str, selector: dict[str, str]) -> set[str]:
        """Keys of the pods in `namespace` carrying every pair of `selector`."""
        sets = sorted(
            (self._index.keys_with((namespace, k, v)) for k, v in selector.items()), key=len
        )
        if not sets:
            return set()
        result = set(sets[0])
        for other in sets[1:]:
            result &= other
        return result


class ServiceBackends:
    """Both indexes, kept from Service and pod events, for a controller of Service backends.

    The Endpoints and EndpointSlice controllers need the same two answers: which
    Services a pod change concerns, and which pods a Service selects.
    """

    def __init__(self) -> None:
        self.services = ServiceSelectorIndex()
        self.pods = PodLabelIndex()

    def service_changed(self, old: Obj | None, new: Obj | None) -> str:
        """Index the change; the Service's key."""
        if new is None:
            assert old is not None
            key = object_key(old)
            self.services.remove(key)
            return key
        self.services.update(new)
        return object_key(new)

    def pod_changed(self, old: Obj | None, new: Obj | None) -> set[str]:
        """Index the change; the keys of the Services it may concern (none if it cannot matter)."""
        if new is None:
            assert old is not None
            self.pods.remove(object_key(old))
        else:
            self.pods.update(new)
        if old is not None and new is not None and pod_view(old) == pod_view(new):
            return set()
        keys: set[str] = set()
        for pod in (old, new):
            if pod is not None:
                keys |= self.services.candidates(pod)
        return keys

    def selected_pods(self, service: Obj, pods: Informer) -> list[Obj]:
        """The pods of the Service's namespace its selector matches, from the informer's cache."""
        namespace = service["metadata"].get("namespace", "")
        keys = self.pods.selected(namespace, service["spec"]["selector"])
        return [pod for key in keys if (pod := pods.get(key)) is not None]


def pod_view(pod: Obj) -> tuple[Any, ...]:
    """What of a pod can change its place in Endpoints or slices: other changes queue no work."""
    meta = pod["metadata"]
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    return (
        meta.get("labels"),
        meta.get("deletionTimestamp"),
        status.get("podIP"),
        status.get("podIPs"),
        status.get("phase"),
        pod_is_ready(pod),
        spec.get("nodeName"),
        spec.get("hostname"),
        spec.get("subdomain"),
    )
