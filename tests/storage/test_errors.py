"""What the API answers for each storage failure: the code and reason a client acts on."""

from __future__ import annotations

import pytest

from kubesvc.storage import errors

CASES = [
    (errors.KeyNotFound("/registry/services/default/web"), 404, "NotFound"),
    (errors.KeyExists("/registry/services/default/web"), 409, "AlreadyExists"),
    (errors.Conflict("/registry/services/default/web", 3, 4), 409, "Conflict"),
    (errors.Unavailable("no etcd member answered"), 503, "ServiceUnavailable"),
    (errors.Indeterminate("answer lost"), 504, "Timeout"),
    (errors.StoreClosed("closing"), 503, "ServiceUnavailable"),
]


@pytest.mark.parametrize(("error", "code", "reason"), CASES)
def test_storage_errors_become_statuses(error: errors.StorageError, code: int, reason: str) -> None:
    status = errors.to_status_error(error, "services", "web")
    assert (status.code, status.reason) == (code, reason)
    assert status.status()["code"] == code


def test_an_unapplied_write_may_be_retried_and_says_so() -> None:
    status = errors.to_status_error(errors.Unavailable("down"), "services", "web")
    assert status.retry_after_s == 1
    assert "down" in status.message
