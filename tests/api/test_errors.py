"""The `Status` objects the API answers errors with, as kubectl and client libraries read them."""

from __future__ import annotations

import pytest

from kubesvc.api import errors
from kubesvc.api.field import invalid, required


@pytest.mark.parametrize(
    ("err", "code", "reason", "message"),
    [
        (errors.bad_request("bad selector"), 400, "BadRequest", "bad selector"),
        (errors.unauthorized(), 401, "Unauthorized", "Unauthorized"),
        (
            errors.forbidden("services", "web", 'User "bob" cannot get resource "services"'),
            403,
            "Forbidden",
            'services "web" is forbidden: User "bob" cannot get resource "services"',
        ),
        (errors.not_found("services", "nope"), 404, "NotFound", 'services "nope" not found'),
        (
            errors.not_found("endpointslices", "x", group="discovery.k8s.io"),
            404,
            "NotFound",
            'endpointslices.discovery.k8s.io "x" not found',
        ),
        (
            errors.already_exists("services", "web"),
            409,
            "AlreadyExists",
            'services "web" already exists',
        ),
        (
            errors.stale_update("services", "x"),
            409,
            "Conflict",
            'Operation cannot be fulfilled on services "x": the object has been modified; '
            "please apply your changes to the latest version and try again",
        ),
        (errors.expired(5, 120), 410, "Expired", "too old resource version: 5 (120)"),
        (errors.too_large(), 413, "RequestEntityTooLarge", "the request is too large"),
        (
            errors.too_many_requests(),
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
        ),
        (
            errors.internal_error("disk full"),
            500,
            "InternalError",
            "Internal error occurred: disk full",
        ),
    ],
)
def test_status_for_each_error(
    err: errors.StatusError, code: int, reason: str, message: str
) -> None:
    status = err.status()
    assert status["kind"] == "Status" and status["apiVersion"] == "v1"
    assert status["status"] == "Failure"
    assert status["metadata"] == {}
    assert (status["code"], status["reason"], status["message"]) == (code, reason, message)
    assert err.code == code


def test_not_found_names_the_object_in_details() -> None:
    status = errors.not_found("services", "nope").status()
    assert status["details"] == {"name": "nope", "kind": "services"}


def test_unsupported_media_type_names_the_type() -> None:
    status = errors.unsupported_media_type("text/plain").status()
    assert status["code"] == 415 and status["reason"] == "UnsupportedMediaType"
    assert "text/plain" in status["message"]


def test_too_many_requests_says_when_to_retry() -> None:
    assert errors.too_many_requests(retry_after_s=3).status()["details"] == {"retryAfterSeconds": 3}


def test_invalid_carries_one_cause_per_field_error() -> None:
    field_errors = [
        invalid("spec.ports[0].name", "-web", "must start and end with an alphanumeric character"),
        required("spec.ports[1].name"),
    ]
    status = errors.invalid("Service", "my-service", field_errors).status()
    assert status["code"] == 422 and status["reason"] == "Invalid"
    assert status["details"]["kind"] == "Service"
    assert status["details"]["name"] == "my-service"
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: "-web": must start and end with an alphanumeric character',
            "field": "spec.ports[0].name",
        },
        {
            "reason": "FieldValueRequired",
            "message": "Required value",
            "field": "spec.ports[1].name",
        },
    ]
    assert status["message"] == (
        'Service "my-service" is invalid: [spec.ports[0].name: Invalid value: "-web": '
        "must start and end with an alphanumeric character, spec.ports[1].name: Required value]"
    )


def test_invalid_with_one_error_has_no_brackets() -> None:
    status = errors.invalid("Service", "s", [required("spec.ports")]).status()
    assert status["message"] == 'Service "s" is invalid: spec.ports: Required value'
