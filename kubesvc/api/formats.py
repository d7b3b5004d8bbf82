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


def _byte_len(value: str) -> int:
    # Go measures strings in UTF-8 bytes; surrogatepass keeps odd input from raising here.
    return len(value.encode("utf-8", "surrogatepass"))


def _max_len(value: str, limit: int) -> list[str]:
    return [f"must be no more than {limit} characters"] if _byte_len(value) > limit else []


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    # Kubernetes' RegexError text, including its odd "',  or '" spacing between examples.
    shown = "".join(f"{' or ' if i else ''}'{e}', " for i, e in enumerate(examples))
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = f"{_DNS1123_LABEL_FMT}(\\.{_DNS1123_LABEL_FMT})*"
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE_FMT = f"({_QUALIFIED_NAME_FMT})?"
_DNS1123_LABEL = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN = re.compile(_DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL = re.compile(_DNS1035_LABEL_FMT)
_QUALIFIED_NAME = re.compile(_QUALIFIED_NAME_FMT)
_LABEL_VALUE = re.compile(_LABEL_VALUE_FMT)
_IANA_SVC_NAME = re.compile(r"[-a-z0-9]+")
_HAS_LETTER = re.compile(r"[a-z]")
_ENV_VAR_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_QUALIFIED_NAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)


def dns1123_label(value: str) -> list[str]:
    """A lowercase RFC 1123 label: port names, namespace names, hostnames."""
    errs = _max_len(value, DNS1123_LABEL_MAX)
    if not _DNS1123_LABEL.fullmatch(value):
        msg = (
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters"
            " or '-', and must start and end with an alphanumeric character"
        )
        errs.append(_regex_error(msg, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def dns1123_subdomain(value: str) -> list[str]:
    """A lowercase RFC 1123 subdomain: pod and endpoint names, externalName."""
    errs = _max_len(value, DNS1123_SUBDOMAIN_MAX)
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        msg = (
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric"
            " characters, '-' or '.', and must start and end with an alphanumeric character"
        )
        errs.append(_regex_error(msg, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def dns1035_label(value: str) -> list[str]:
    """An RFC 1035 label: Service names, which become DNS labels and env var prefixes."""
    errs = _max_len(value, DNS1035_LABEL_MAX)
    if not _DNS1035_LABEL.fullmatch(value):
        msg = (
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-',"
            " start with an alphabetic character, and end with an alphanumeric character"
        )
        errs.append(_regex_error(msg, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
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
    """A label or annotation key: `[prefix/]name`, as Kubernetes' IsQualifiedName words it.

    The prefix is a DNS-1123 subdomain (≤ 253), the name ≤ 63 of `[-A-Za-z0-9_.]`,
    alphanumeric at both ends.
    """
    examples = ("MyName", "my.name", "123-abc")
    parts = value.split("/")
    if len(parts) > 2:
        return [
            "a qualified name "
            + _regex_error(_QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT, *examples)
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    errs: list[str] = []
    name = parts[-1]
    if len(parts) == 2:
        if not parts[0]:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in dns1123_subdomain(parts[0]))
    if not name:
        errs.append("name part must be non-empty")
    elif _byte_len(name) > QUALIFIED_NAME_MAX:
        errs.append(f"name part must be no more than {QUALIFIED_NAME_MAX} characters")
    if not _QUALIFIED_NAME.fullmatch(name):
        errs.append(
            "name part " + _regex_error(_QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT, *examples)
        )
    return errs


def label_value(value: str) -> list[str]:
    """A label value: empty, or up to 63 characters of a qualified name's charset."""
    errs = _max_len(value, LABEL_VALUE_MAX)
    if not _LABEL_VALUE.fullmatch(value):
        msg = (
            "a valid label must be an empty string or consist of alphanumeric characters,"
            " '-', '_' or '.', and must start and end with an alphanumeric character"
        )
        errs.append(_regex_error(msg, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def env_var_name(value: str) -> list[str]:
    if _ENV_VAR_NAME.fullmatch(value):
        return []
    msg = (
        "a valid environment variable name must consist of alphabetic characters, digits,"
        " '_', '-', or '.', and must not start with a digit"
    )
    return [_regex_error(msg, _ENV_VAR_NAME.pattern, "my.env-name", "MY_ENV.NAME", "MyEnvName1")]


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
