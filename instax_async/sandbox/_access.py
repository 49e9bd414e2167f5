"""Who the sandbox answers: requests for its own host, and writes from its own pages only.

A developer's browser is the sandbox's one exposed client. Two attacks reach it from any web page
that browser opens:

- **DNS rebinding**: a page at ``http://evil.example:8080`` makes its own name resolve to
  127.0.0.1, and its scripts then talk to the sandbox as if it were their own site, reading every
  answer. The browser still sends ``Host: evil.example:8080``, so every request whose ``Host`` is
  not a name or address of this machine is refused (421). What counts as one: ``localhost``, a
  loopback address, ``0.0.0.0`` / ``[::]`` (which reach this machine), the address the request
  arrived on, the host the sandbox was started on, and the names in ``allowed_hosts``. The port
  is not compared: no rebinding changes it, and a port forward (``ssh -L``, ``docker -p``)
  legitimately does.
- **Cross-site writes**: a form on any site can POST ``text/plain`` to the sandbox without a
  preflight, which would settle a session. Every request but GET, HEAD and OPTIONS is refused
  (403) when the browser says it comes from another origin: by ``Sec-Fetch-Site`` where the
  browser sends it (``same-origin`` and ``none`` pass, ``same-site`` and ``cross-site`` do not:
  another port of localhost is another origin but the same site), else by an ``Origin`` whose
  host and port differ from the ``Host`` (``Origin: null``, from sandboxed frames and ``data:``
  pages, never matches). A request with neither header is not a browser's cross-site one: curl,
  the SDK and the checkout page's own ``fetch`` keep working. This is the rule of Go's
  ``http.CrossOriginProtection``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from aiohttp import web

from ..errors import ValidationError

__all__ = ["SAFE_METHODS", "allowed_host_names", "cross_origin", "host_name", "refused_host"]

#: Methods that change nothing, answered whatever page asked (the checkout page is embedded by
#: other sites, and navigated to from them).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# A Host header or an origin's host part: a name or IPv4 address, or an IPv6 one in brackets;
# then an optional port.
_AUTHORITY = re.compile(
    r"(?:\[(?P<ip6>[^\]]*)\]|(?P<name>[A-Za-z0-9._-]*))(?::(?P<port>[0-9]{1,5}))?"
)
_ORIGIN = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://(?P<authority>[^/?#@]*)")

# How much of a header a refusal quotes (the header may be up to 8 KiB of anything).
_SHOWN = 100


def _canonical(name: str, *, ip6: bool) -> str | None:
    """One spelling per host: lowercase, no final dot, IPv6 addresses compressed."""
    if ip6:
        try:
            return ipaddress.IPv6Address(name).compressed
        except ValueError:
            return None
    name = name.lower().removesuffix(".")
    return name or None


def _authority(value: str) -> tuple[str, str | None] | None:
    """``(host, port or None)`` of a ``Host`` header or an origin; ``None`` when malformed."""
    match = _AUTHORITY.fullmatch(value)
    if match is None:
        return None
    ip6 = match["ip6"] is not None
    host = _canonical(match["ip6"] if ip6 else match["name"], ip6=ip6)
    return None if host is None else (host, match["port"])


def host_name(value: str) -> str | None:
    """``value`` as a host name the sandbox compares ``Host`` headers with, or ``None`` when it
    is not a bare name or address (it has a scheme, a port, a path, a space …)."""
    if ":" in value and not value.startswith("["):  # a bare IPv6 address
        return _canonical(value, ip6=True)
    split = _authority(value)
    return split[0] if split is not None and split[1] is None else None


def allowed_host_names(value: object) -> tuple[str, ...]:
    """``SandboxConfig.allowed_hosts``: host names, each checked and in its one spelling.

    :raises ValidationError: a str rather than a list of them, or an entry that is not a bare
        host name or address.
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValidationError(
            f"allowed_hosts: expected a list of host names, got {type(value).__name__}",
            field="allowed_hosts",
        )
    names = []
    for entry in value:
        name = host_name(entry) if isinstance(entry, str) else None
        if name is None:
            raise ValidationError(
                "allowed_hosts: expected host names such as 'sandbox.example.test' or "
                f"'192.168.1.20', without a scheme, port or path; got {entry!r}",
                field="allowed_hosts",
            )
        names.append(name)
    return tuple(names)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text.partition("%")[0])  # no IPv6 zone (fe80::1%eth0)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # how a dual-stack socket names an IPv4 peer or address
    return ip


def _shown(value: str) -> str:
    return repr(value if len(value) <= _SHOWN else value[: _SHOWN - 1] + "…")


def refused_host(request: web.Request, names: frozenset[str]) -> tuple[int, str] | None:
    """The status and message refusing ``request`` for its ``Host``, or ``None`` to answer it.

    ``names``: the host names accepted besides the machine's own (``allowed_hosts`` and the
    host the sandbox listens on). A request without ``Host`` (HTTP/1.0) is answered: no
    browser sends one, so no page can be behind it.
    """
    header = request.headers.get("Host")
    if header is None:
        return None
    split = _authority(header)
    if split is None:
        return 400, f"the Host header {_shown(header)} is not a host name with an optional port"
    host = split[0]
    if host == "localhost" or host in names:
        return None
    ip = _ip(host)
    if ip is not None:
        if ip.is_loopback or ip.is_unspecified:
            return None
        local = request.transport.get_extra_info("sockname") if request.transport else None
        if isinstance(local, tuple) and _ip(str(local[0])) == ip:
            return None
    return 421, (
        f"this sandbox does not answer for the host {_shown(header)}: only for localhost, "
        "loopback addresses and the address it listens on; to reach it by another name, add "
        "that name to SandboxConfig.allowed_hosts (instax sandbox --allowed-host NAME)"
    )


def cross_origin(request: web.Request) -> str | None:
    """Why ``request`` comes from another origin's page, or ``None`` when it does not."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        if site in ("same-origin", "none"):
            return None
        return f"the browser says it was sent from another site (Sec-Fetch-Site: {_shown(site)})"
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    match = _ORIGIN.fullmatch(origin)
    sender = _authority(match["authority"]) if match else None
    host = request.headers.get("Host")
    if sender is not None and host is not None and sender == _authority(host):
        return None
    return f"it was sent from a page of another origin (Origin: {_shown(origin)})"
