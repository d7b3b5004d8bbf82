"""The self-reviews' answers for the two roles (pure)."""

from __future__ import annotations

import pytest

from kubesvc.api.errors import StatusError
from kubesvc.apiserver.auth import User
from kubesvc.apiserver.reviews import access_review, self_subject_review

ADMIN = User("admin", "1", ("system:masters",))
VIEWER = User("viewer", "2", ("kubesvc:read-only",))


def review(verb: str, *, resource: bool = True) -> dict[str, object]:
    attributes = {"verb": verb, "resource": "pods"} if resource else {"verb": verb, "path": "/x"}
    key = "resourceAttributes" if resource else "nonResourceAttributes"
    return {"kind": "SelfSubjectAccessReview", "spec": {key: attributes}}


@pytest.mark.parametrize(
    ("user", "verb", "allowed"),
    [
        (ADMIN, "create", True),
        (ADMIN, "delete", True),
        (VIEWER, "get", True),
        (VIEWER, "watch", True),
        (VIEWER, "create", False),
        (VIEWER, "deletecollection", False),
    ],
)
def test_who_may_do_what(user: User, verb: str, allowed: bool) -> None:
    answer = access_review(user, review(verb))
    assert answer["status"]["allowed"] is allowed  # type: ignore[index]
    assert answer["spec"] == review(verb)["spec"]
    assert access_review(user, review(verb, resource=False))["status"]["allowed"] is allowed  # type: ignore[index]


def test_a_review_without_attributes_is_invalid() -> None:
    with pytest.raises(StatusError) as bad:
        access_review(ADMIN, {"kind": "SelfSubjectAccessReview", "spec": {}})
    assert bad.value.code == 422
    with pytest.raises(StatusError) as wrong:
        access_review(ADMIN, {"kind": "Pod"})
    assert wrong.value.code == 400


def test_whoami() -> None:
    info = self_subject_review(VIEWER)["status"]["userInfo"]  # type: ignore[index]
    assert info == {
        "username": "viewer",
        "uid": "2",
        "groups": ["kubesvc:read-only", "system:authenticated"],
    }
