"""The API's one error family: every failure a client can see is a `StatusError`.

Errors are raised deep (storage, validation, selectors) and turned into a
Kubernetes `Status` object once, at the HTTP edge, by `StatusError.status`.
The wording follows the Kubernetes API server's where it has one, because
kubectl and users recognise those messages.
"""

from __future__ import annotations

from typing import Any

from kubesvc.api.field import FieldError

# HTTP code → Status.reason, as Kubernetes' metav1.StatusReason names them.
REASON_BY_CODE: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class StatusError(Exception):
    """An error the API answers with: an HTTP code and a Kubernetes `Status`."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str | None = None,
        *,
        kind: str | None = None,
        name: str | None = None,
        group: str | None = None,
        causes: list[dict[str, str]] | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASON_BY_CODE.get(code, "Unknown")
        self.kind = kind
        self.name = name
        self.group = group
        self.causes = causes or []
        self.retry_after_s = retry_after_s

    def status(self) -> dict[str, Any]:
        """The `Status` object for this error, as the API server sends it."""
        details: dict[str, Any] = {}
        if self.name is not None:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind is not None:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = list(self.causes)
        if self.retry_after_s is not None:
            details["retryAfterSeconds"] = self.retry_after_s
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if details:
            body["details"] = details
        return body

    def __repr__(self) -> str:
        return f"StatusError({self.code}, {self.reason}, {self.message!r})"


def _qualified(resource: str, group: str | None) -> str:
    """`services` or `endpointslices.discovery.k8s.io`, as Kubernetes prints a resource."""
    return f"{resource}.{group}" if group else resource


def bad_request(message: str) -> StatusError:
    return StatusError(400, message)


def unauthorized(message: str = "Unauthorized") -> StatusError:
    return StatusError(401, message)


def forbidden(resource: str, name: str, why: str, group: str | None = None) -> StatusError:
    target = f'{_qualified(resource, group)} "{name}"' if name else _qualified(resource, group)
    return StatusError(
        403, f"{target} is forbidden: {why}", kind=resource, name=name or None, group=group
    )


def not_found(resource: str, name: str, group: str | None = None) -> StatusError:
    return StatusError(
        404,
        f'{_qualified(resource, group)} "{name}" not found',
        kind=resource,
        name=name,
        group=group,
    )


def method_not_allowed(method: str, what: str) -> StatusError:
    return StatusError(
        405, f"the server does not allow this method on the requested resource ({method} {what})"
    )


def already_exists(resource: str, name: str, group: str | None = None) -> StatusError:
    return StatusError(
        409,
        f'{_qualified(resource, group)} "{name}" already exists',
        "AlreadyExists",
        kind=resource,
        name=name,
        group=group,
    )


def conflict(resource: str, name: str, why: str, group: str | None = None) -> StatusError:
    return StatusError(
        409,
        f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {why}',
        "Conflict",
        kind=resource,
        name=name,
        group=group,
    )


STALE_OBJECT = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def stale_update(resource: str, name: str, group: str | None = None) -> StatusError:
    """409 Conflict for an update whose resourceVersion is no longer current."""
    return conflict(resource, name, STALE_OBJECT, group)


def expired(requested_rv: int, oldest_rv: int) -> StatusError:
    """410 for a watch or list from a resourceVersion older than the kept history."""
    return StatusError(410, f"too old resource version: {requested_rv} ({oldest_rv})", "Expired")


def gone(message: str) -> StatusError:
    return StatusError(410, message, "Gone")


def too_large(message: str = "the request is too large") -> StatusError:
    return StatusError(413, message)


def unsupported_media_type(content_type: str) -> StatusError:
    return StatusError(
        415,
        f'the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got "{content_type}")',
    )


def invalid(
    kind: str, name: str, errors: list[FieldError], group: str | None = None
) -> StatusError:
    """422 Invalid, one cause per field error, in Kubernetes' message layout."""
    name_shown = name or ""
    if len(errors) == 1:
        summary = errors[0].summary()
    else:
        summary = "[" + ", ".join(e.summary() for e in errors) + "]"
    return StatusError(
        422,
        f'{kind} "{name_shown}" is invalid: {summary}',
        "Invalid",
        kind=kind,
        name=name_shown,
        group=group,
        causes=[e.cause() for e in errors],
    )


def too_many_requests(
    message: str = "Too many requests, please try again later.", retry_after_s: int = 1
) -> StatusError:
    return StatusError(429, message, retry_after_s=retry_after_s)


def internal_error(err: BaseException | str) -> StatusError:
    return StatusError(500, f"Internal error occurred: {err}")


def service_unavailable(message: str) -> StatusError:
    return StatusError(503, message)
