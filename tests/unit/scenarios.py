"""Hand-built groups whose right answer is known."""

import zlib

from tests.conftest import T0, ev


def farm(prefix: str, n: int, devices: int, t: float = T0, step: float = 1.0, dc_ip: str | None = "45.0.0.1"):
    """n accounts on a few shared phones (each account on two neighbouring phones), API from a datacenter."""
    events = []
    for i in range(n):
        account = f"{prefix}{i}"
        ts = t + i * step
        # rotating proxies: an address per account and event, never shared with another farm
        net = zlib.crc32(prefix.encode())
        proxy = f"{(net >> 8) % 250}.{(net >> 16) % 250}.{i % 250}"
        events.append(ev(account, ts, device=f"{prefix}-dev{i % devices}", ip=f"77.{proxy}", kind="signup"))
        events.append(ev(account, ts + 0.5, device=f"{prefix}-dev{(i + 1) % devices}", ip=f"78.{proxy}"))
        if dc_ip:
            events.append(ev(account, ts + 0.7, ip=dc_ip, kind="api_usage", asn="AS16509"))
    return events


def crowd(prefix: str, n: int, t: float = T0, step: float = 1.0, shared_device: str | None = None,
          shared_ip: str | None = None, shared_card: str | None = None):
    """n unrelated accounts, each with a phone of its own, all touching the same hub(s)."""
    events = []
    for i in range(n):
        account = f"{prefix}{i}"
        ts = t + i * step
        events.append(ev(account, ts, device=f"{prefix}-own{i}", ip=f"98.{i}.0.1"))
        events.append(ev(account, ts + 0.5, device=shared_device, ip=shared_ip, payment=shared_card))
    return events
