"""Who the client is: addresses from settings, the TCP peer, and
``X-Forwarded-*`` believed from trusted proxies only.

Used by the proxy layer here, the request log (a proxy's request id) and
``/metrics`` (its allowed scrapers).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from flask import Flask
from flask import request
from werkzeug.middleware.proxy_fix import ProxyFix


def parse_networks(
    value: str | Iterable[str] | None, setting: str = "METRICS_ALLOW"
) -> tuple:
    """``"10.0.0.0/8, ::1"`` -> networks; a bad entry stops start-up."""
    if value is None:
        return ()
    parts = value.split(",") if isinstance(value, str) else value
    networks = []
    for part in (p.strip() for p in parts):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError as exc:
            raise ValueError(f"{setting}: {part!r} is not an address") from exc
    return tuple(networks)


def address_in(address: str | None, networks: tuple) -> bool:
    if not address or not networks:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)


def client_ip() -> str:
    """The client address (already rewritten by a trusted proxy, if any)."""
    return request.remote_addr or "unknown"


def peer_address(environ: dict) -> str | None:
    """The TCP peer, even when ProxyFix has rewritten REMOTE_ADDR."""
    original = environ.get("werkzeug.proxy_fix.orig") or {}
    return original.get("REMOTE_ADDR") or environ.get("REMOTE_ADDR")


def trust_proxies(app: Flask, wsgi_app):
    """``wsgi_app`` behind TrustedProxyFix when TRUSTED_PROXIES names any."""
    networks = parse_networks(app.config["TRUSTED_PROXIES"], "TRUSTED_PROXIES")
    return TrustedProxyFix(wsgi_app, networks) if networks else wsgi_app


class TrustedProxyFix:
    """Apply X-Forwarded-For/-Proto/-Host only when the direct peer is a trusted
    proxy; from anyone else those headers are ignored (they are trivial to
    forge). One proxy hop is trusted: nginx appends the real client address."""

    def __init__(self, wsgi_app, networks) -> None:
        self.direct = wsgi_app
        self.fixed = ProxyFix(wsgi_app, x_for=1, x_proto=1, x_host=1)
        self.networks = networks

    def __call__(self, environ, start_response):
        if address_in(environ.get("REMOTE_ADDR"), self.networks):
            return self.fixed(environ, start_response)
        return self.direct(environ, start_response)
