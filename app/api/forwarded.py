"""The client's address and scheme behind trusted proxies, from X-Forwarded-For/-Proto or from
Forwarded (RFC 7239), whichever one header family the proxy is configured to set.

Only a request whose direct peer is a trusted proxy is read at all, and only the one header family
named in the settings: a proxy passes on whatever the client sent in the other family, so reading
both would let a client choose its own address. The list is read from the right (the hop nearest
to us): trusted proxies are stepped over and the first address that is not one is the client;
what stands to its left came from the client and is ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
SCHEMES = ("http", "https")


class Proxies:
    def __init__(self, networks: Iterable[str], *, header: str = "x-forwarded") -> None:
        self.networks = [ipaddress.ip_network(n.strip(), strict=False) for n in networks]
        if header not in ("x-forwarded", "forwarded"):
            raise ValueError(f"unknown proxy header family {header!r}")
        self.header = header

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, address: IPAddress | str | None) -> bool:
        addr = parse_address(address) if isinstance(address, str) else address
        if addr is None:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self.networks if net.version == addr.version)

    def resolve(
        self, peer: str | None, headers: Sequence[tuple[bytes, bytes]]
    ) -> tuple[str | None, str | None]:
        """(client address, scheme) taken from the forwarded headers, each None when the request
        says nothing we may believe about it (then the peer's own values stand)."""
        if not self.trusts(peer):
            return None, None
        if self.header == "forwarded":
            hops = _forwarded_hops(_joined(headers, b"forwarded"))
        else:
            hops = _x_forwarded_hops(
                _joined(headers, b"x-forwarded-for"), _joined(headers, b"x-forwarded-proto")
            )
        if hops is None:
            return None, None
        client, scheme = None, None
        for address, proto in reversed(hops):
            addr = parse_address(address) if address is not None else None
            client, scheme = addr, proto
            if addr is None or not self.trusts(addr):
                break
        scheme = scheme.lower() if scheme and scheme.lower() in SCHEMES else None
        return (str(client) if client is not None else None), scheme


def _joined(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> str | None:
    values = [v.decode("latin-1") for k, v in headers if k.lower() == name]
    return ",".join(values) if values else None


def _x_forwarded_hops(
    forwarded_for: str | None, forwarded_proto: str | None
) -> list[tuple[str | None, str | None]] | None:
    addresses = [a.strip() for a in forwarded_for.split(",")] if forwarded_for else []
    protos = [p.strip() for p in forwarded_proto.split(",")] if forwarded_proto else []
    if not addresses and not protos:
        return None
    if not addresses:
        return [(None, protos[-1])]
    if len(protos) == len(addresses):
        return list(zip(addresses, protos, strict=True))
    # A proxy that overwrites X-Forwarded-Proto leaves one value, the scheme it was reached by.
    last = protos[-1] if protos else None
    return [(a, last) for a in addresses]


def _forwarded_hops(value: str | None) -> list[tuple[str | None, str | None]] | None:
    if not value:
        return None
    hops = []
    for element in _split(value, ","):
        params: dict[str, str] = {}
        for pair in _split(element, ";"):
            name, sep, raw = pair.partition("=")
            if not sep:
                if pair.strip():
                    return None
                continue
            text = raw.strip()
            if text.startswith('"'):
                if len(text) < 2 or not text.endswith('"'):
                    return None
                text = text[1:-1].replace('\\"', '"')
            params[name.strip().lower()] = text
        hops.append((params.get("for"), params.get("proto")))
    return hops


def _split(text: str, sep: str) -> list[str]:
    """Split on `sep` outside double quotes (an IPv6 address with a port is quoted)."""
    parts, current, quoted = [], [], False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def parse_address(text: str | None) -> IPAddress | None:
    """An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`,
    `[2001:db8::1]` or `[2001:db8::1]:4711`; None for anything else ('unknown', '_hidden')."""
    if not text:
        return None
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
