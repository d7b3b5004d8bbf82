"""Format checks shared by every kind: names, label keys and values, ports, IPs.

Each check returns a list of reasons (empty = valid), worded as Kubernetes
words them, so callers wrap them into field errors at the right path.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
DNS1035_LABEL_MAX = 63
IANA_SVC_NAME_MAX = 15
LABEL_VALUE_MAX = 63
QUALIFIED_NAME_MAX = 63

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_IANA_SVC_NAME = re.compile(r"[-a-z0-9]+")
_HAS_LETTER = re.compile(r"[a-z]")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_ENV_VAR_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")


def _max_len(value: str, limit: int) -> list[str]:
    return [f"must be no more than {limit} characters"] if len(value) > limit else []


def dns1123_label(value: str) -> list[str]:
    """A lowercase RFC 1123 label: port names, namespace names, hostnames."""
    errs = _max_len(value, DNS1123_LABEL_MAX)
    if not _DNS1123_LABEL.fullmatch(value):
        errs.append(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters"
            " or '-', and must start and end with an alphanumeric character"
            " (e.g. 'my-name',  or '123-abc', regex used for validation is"
            " '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        )
    return errs


def dns1123_subdomain(value: str) -> list[str]:
    """A lowercase RFC 1123 subdomain: pod and endpoint names, externalName."""
    errs = _max_len(value, DNS1123_SUBDOMAIN_MAX)
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        errs.append(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric"
            " characters, '-' or '.', and must start and end with an alphanumeric character"
            " (e.g. 'example.com', regex used for validation is"
            " '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )
    return errs


def dns1035_label(value: str) -> list[str]:
    """An RFC 1035 label: Service names, which become DNS labels and env var prefixes."""
    errs = _max_len(value, DNS1035_LABEL_MAX)
    if not _DNS1035_LABEL.fullmatch(value):
        errs.append(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-',"
            " start with an alphabetic character, and end with an alphanumeric character"
            " (e.g. 'my-name',  or 'abc-123', regex used for validation is"
            " '[a-z]([-a-z0-9]*[a-z0-9])?')"
        )
    return errs


def iana_svc_name(value: str) -> list[str]:
    """An IANA service name: container port names and string targetPorts."""
    errs = _max_len(value, IANA_SVC_NAME_MAX)
    if not _IANA_SVC_NAME.fullmatch(value):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if not _HAS_LETTER.search(value):
        errs.append("must contain at least one letter (a-z)")
    if value.startswith("-") or value.endswith("-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def qualified_name(value: str) -> list[str]:
    """A label or annotation key: an optional DNS subdomain prefix, `/`, and a name."""
    if not value:
        return ["name part must be non-empty"]
    prefix, sep, name = value.rpartition("/")
    errs: list[str] = []
    if sep:
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs += [f"prefix part {m}" for m in dns1123_subdomain(prefix)]
        if value.count("/") > 1:
            errs.append(
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.',"
                " and must start and end with an alphanumeric character (e.g. 'MyName',"
                "  or 'my.name',  or '123-abc', regex used for validation is"
                " '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain"
                " prefix and '/' (e.g. 'example.com/MyName')"
            )
            return errs
    if not name:
        errs.append("name part must be non-empty")
        return errs
    if len(name) > QUALIFIED_NAME_MAX:
        errs.append(f"name part must be no more than {QUALIFIED_NAME_MAX} characters")
    if not _QUALIFIED_NAME.fullmatch(name):
        errs.append(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must"
            " start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',"
            "  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        )
    return errs


def label_value(value: str) -> list[str]:
    """A label value: empty, or up to 63 characters of a qualified name's charset."""
    errs = _max_len(value, LABEL_VALUE_MAX)
    if value and not _QUALIFIED_NAME.fullmatch(value):
        errs.append(
            "a valid label must be an empty string or consist of alphanumeric characters,"
            " '-', '_' or '.', and must start and end with an alphanumeric character"
            " (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is"
            " '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        )
    return errs


def env_var_name(value: str) -> list[str]:
    if _ENV_VAR_NAME.fullmatch(value):
        return []
    return [
        "a valid environment variable name must consist of alphabetic characters, digits,"
        " '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or"
        " 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is"
        " '[-._a-zA-Z][-._a-zA-Z0-9]*')"
    ]


PORT_RANGE_MSG = "must be between 1 and 65535, inclusive"


def port_number(value: int) -> list[str]:
    return [] if 1 <= value <= 65535 else [PORT_RANGE_MSG]


def parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address, or None when `value` is not one in canonical-enough form.

    Leading zeros (`010.0.0.1`) are refused, as Kubernetes refuses them, because
    other parsers read them as octal.
    """
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def ip_address(value: str) -> list[str]:
    if parse_ip(value) is None:
        return ["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
    return []


_LINK_LOCAL_MULTICAST_V4 = ipaddress.ip_network("224.0.0.0/24")


def _is_link_local_multicast(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if ip.version == 4:
        return ip in _LINK_LOCAL_MULTICAST_V4
    # ffX2::/16: multicast with link-local scope, whatever the flag bits (as Go's net.IP does).
    packed = ip.packed
    return packed[0] == 0xFF and packed[1] & 0x0F == 0x02


def endpoint_ip(
    value: str, allowed_loopback: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network] = ()
) -> list[str]:
    """Rules for a backend address in Endpoints and EndpointSlices.

    `allowed_loopback` lists loopback ranges that host-mode pods live in
    (the `--pod-cidr`); every other loopback address is still refused.
    """
    ip = parse_ip(value)
    if ip is None:
        return ip_address(value)
    if ip.is_unspecified:
        return [
            "may not be unspecified (0.0.0.0)" if ip.version == 4 else "may not be unspecified (::)"
        ]
    if ip.is_loopback and not any(ip in net for net in allowed_loopback):
        return ["may not be in the loopback range (127.0.0.0/8, ::1/128)"]
    if ip.is_link_local:
        return ["may not be in the link-local range (169.254.0.0/16, fe80::/10)"]
    if _is_link_local_multicast(ip):
        return ["may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"]
    return []
