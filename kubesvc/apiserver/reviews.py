"""Who am I, and may I: the self-reviews behind `kubectl auth whoami` and `kubectl auth can-i`.

Pure: the caller's User and the request body in, the answered review out.
Authorisation here has two roles (see `auth.py`): members of `system:masters`
may do anything, everyone else may only get, list and watch.
"""

from __future__ import annotations

from typing import Any

from kubesvc.api import errors
from kubesvc.api.field import required
from kubesvc.apiserver.auth import ADMIN_GROUP, READ_VERBS, User

Obj = dict[str, Any]

AUTHORIZATION = "authorization.k8s.io/v1"
AUTHENTICATION = "authentication.k8s.io/v1"


def access_review(user: User, body: Any) -> Obj:
    """A SelfSubjectAccessReview with its status filled in."""
    if not isinstance(body, dict) or body.get("kind") not in (None, "SelfSubjectAccessReview"):
        raise errors.bad_request("the body of the request must be a SelfSubjectAccessReview")
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    resource = spec.get("resourceAttributes")
    non_resource = spec.get("nonResourceAttributes")
    if not isinstance(resource, dict) and not isinstance(non_resource, dict):
        raise errors.invalid(
            "SelfSubjectAccessReview",
            "",
            [
                required(
                    "spec.resourceAttributes",
                    "exactly one of nonResourceAttributes or resourceAttributes must be specified",
                )
            ],
        )
    attributes = resource if isinstance(resource, dict) else non_resource
    verb = str((attributes or {}).get("verb") or "")
    allowed = user.is_admin or verb in READ_VERBS
    if allowed:
        reason = (
            f'allowed: "{user.name}" is in group {ADMIN_GROUP}'
            if user.is_admin
            else f"allowed: every user may {verb}"
        )
    else:
        reason = f"only members of {ADMIN_GROUP} may {verb or 'do that'}"
    return {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": AUTHORIZATION,
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": {"allowed": allowed, "reason": reason},
    }


def self_subject_review(user: User) -> Obj:
    """A SelfSubjectReview: the caller as the API server sees them."""
    return {
        "kind": "SelfSubjectReview",
        "apiVersion": AUTHENTICATION,
        "metadata": {"creationTimestamp": None},
        "status": {
            "userInfo": {
                "username": user.name,
                "uid": user.uid,
                "groups": [*user.groups, "system:authenticated"],
            }
        },
    }
