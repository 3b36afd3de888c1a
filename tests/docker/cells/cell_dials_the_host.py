"""Run inside a container by tests/docker: every rank of every node tries to reach the host.

HOST_PROBE_PORT is a port the host listens on (0.0.0.0), HOST_PROBE_ADDRS the host's own addresses (comma
separated); to those each rank adds, from inside, its default gateway and the first address of each
of its interfaces' networks (where a bridge puts the host). The test fails naming every address that
answered, on any rank, or when a rank sees a network interface besides loopback; the gather itself is
the proof that the nodes still reach each other.
"""

import ipaddress
import os
import socket
import struct
from pathlib import Path

import torch.distributed as dist

DIAL_TIMEOUT_S = 2.0


def _gateways() -> set[str]:
    """The default gateway and each on-link network's first address, from the routing table."""
    found = set()
    try:
        lines = Path("/proc/net/route").read_text().splitlines()[1:]
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        destination, gateway, mask = (
            socket.inet_ntoa(struct.pack("<L", int(fields[i], 16))) for i in (1, 2, 7)
        )
        if destination == "0.0.0.0":
            found.add(gateway)
        else:
            found.add(str(ipaddress.ip_network(f"{destination}/{mask}").network_address + 1))
    return found


def _interfaces() -> list[str]:
    return sorted(line.split(":")[0].strip() for line in Path("/proc/net/dev").read_text().splitlines()[2:])


def test_no_address_of_the_host_answers(dist_env):
    port = int(os.environ["HOST_PROBE_PORT"])
    addresses = {a for a in os.environ.get("HOST_PROBE_ADDRS", "").split(",") if a} | _gateways()
    answered = []
    for address in sorted(addresses):
        try:
            with socket.create_connection((address, port), timeout=DIAL_TIMEOUT_S) as connection:
                connection.settimeout(DIAL_TIMEOUT_S)
                answered.append(f"{address}: {connection.recv(64).decode(errors='replace').strip()}")
        except OSError:
            continue
    mine = {
        "node": dist_env.node_rank,
        "rank": dist_env.rank,
        "answered": answered,
        "interfaces": _interfaces(),
    }
    everyone = [None] * dist_env.world_size
    dist.all_gather_object(everyone, mine)
    print("dialled:", sorted(addresses), "seen:", everyone)
    assert not any(each["answered"] for each in everyone), f"the host answered: {everyone}"
    # No interface but loopback: no address of the host or of another cell can be reached from here at all.
    assert all(each["interfaces"] == ["lo"] for each in everyone), f"interfaces besides lo: {everyone}"
