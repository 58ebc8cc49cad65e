"""The client's address as the ballot limit and the sign-in throttle see it.

A client may write any X-Forwarded-For it likes; only the entries our own trusted proxies
appended can be believed, so the right-most address that is not a trusted proxy counts.
IPv6 clients are keyed on their /64 (one household, one phone on a carrier, gets a whole
/64), IPv4-mapped addresses on their IPv4 address.
"""

from __future__ import annotations

import functools
import ipaddress
import re

from starlette.datastructures import Headers
from starlette.types import Scope


def client_address(scope: Scope, trusted_proxies: tuple[str, ...]) -> str:
    """client_ip of an ASGI request: its TCP peer and every X-Forwarded-For line it holds.
    The one way handlers get the address, so the ballot limit and the sign-in throttle
    cannot read a different one (or only the first line)."""
    client = scope.get("client")
    return client_ip(client[0] if client else None, Headers(scope=scope).getlist("x-forwarded-for"),
                     trusted_proxies)


def client_ip(peer: str | None, forwarded_for, trusted_proxies: tuple[str, ...]) -> str:
    """The peer address, unless the peer is a trusted proxy: then the right-most
    X-Forwarded-For address that is not itself a trusted proxy.

    `forwarded_for` is every header line in order (or one line). All lines count: a proxy
    may add its own line rather than extend the client's, and a client can send any lines
    it likes ahead of it, so only what is right of the client is believed. If the entry
    where the client should be is not an address (junk, "unknown"), the request counts
    as the peer's: a client never gets to pick an address of its own.
    """
    peer = peer or "unknown"
    networks = _networks(tuple(trusted_proxies))
    peer_ip = _address(peer)
    if not networks or not forwarded_for or peer_ip is None or not _within(peer_ip, networks):
        return peer
    lines = [forwarded_for] if isinstance(forwarded_for, str) else forwarded_for
    for hop in reversed([hop for line in lines for hop in line.split(",") if hop.strip()]):
        ip = _address(hop)
        if ip is None:
            return peer
        if not _within(ip, networks):
            return str(ip)
    return peer


@functools.lru_cache(maxsize=8)
def _networks(trusted_proxies: tuple[str, ...]) -> tuple:
    """Trusted proxies as networks, parsed once: single addresses or CIDR (host bits allowed)."""
    return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in trusted_proxies)


def _within(ip, networks) -> bool:
    return any(ip in net for net in networks)


_WITH_PORT = re.compile(r"\[([^\]]+)\](?::\d{1,5})?|(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}")


def _address(entry: str):
    """One X-Forwarded-For entry as an address (IPv4-mapped IPv6 as IPv4), or None.
    Some proxies add the port: 203.0.113.7:4711, [2001:db8::1]:443."""
    entry = entry.strip()
    match = _WITH_PORT.fullmatch(entry)
    if match:
        entry = match.group(1) or match.group(2)
    try:
        ip = ipaddress.ip_address(entry)
    except ValueError:
        return None
    return getattr(ip, "ipv4_mapped", None) or ip


def network_of(address: str) -> str:
    """The network one client counts as, for the ballot limit and the sign-in throttle.

    IPv4: the address (carrier NAT already puts many people behind one). IPv6: its /64,
    the block one phone gets on a mobile network, where it can take a new address for
    every request. IPv4-mapped IPv6 (a dual-stack socket's peer): the IPv4 address.
    Anything else (no peer, a test client's name): itself.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 4:
        return str(ip)
    if ip.ipv4_mapped:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((ip, 64), strict=False))
