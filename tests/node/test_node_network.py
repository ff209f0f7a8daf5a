"""The test node's network stays on this machine, checked while the node is up.

No packet here leaves the machine, even to prove that none can: the "outside" is a
network namespace made by the test, behind a veth pair, with documentation addresses
(TEST-NET-2) that exist nowhere else. A server listens there; a pod tries to reach
it and a host service on the outside interface. Neither connects, nothing crosses
the veth pair, and the guard's drop counters move.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.support.images import Image, build, import_into_containerd
from tests.support.netguard import HOOKS, NodeNetwork, guard_rules, run
from tests.support.testcluster import RealCluster

pytestmark = pytest.mark.node

OUTSIDE = "mlpx0"  # the stand-in for an external interface
OUTSIDE_NETNS = "mlp-outside"  # the world behind it
OUTSIDE_HOST = "198.51.100.1"  # this machine's address on it
OUTSIDE_PEER = "198.51.100.2"  # "a host out there"


@pytest.fixture(scope="module")
def outside() -> Iterator[str]:
    """A veth pair to a namespace with a server on port 80 at OUTSIDE_PEER."""
    run(["ip", "netns", "add", OUTSIDE_NETNS])
    server = None
    try:
        in_ns = ["ip", "netns", "exec", OUTSIDE_NETNS]
        run(
            [
                "ip",
                "link",
                "add",
                OUTSIDE,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                OUTSIDE_NETNS,
            ]
        )
        # IPv4 only, so the link sends nothing of its own (no IPv6 neighbour discovery)
        Path(f"/proc/sys/net/ipv6/conf/{OUTSIDE}/disable_ipv6").write_text("1")
        run([*in_ns, "sysctl", "-q", "-w", "net.ipv6.conf.eth0.disable_ipv6=1"])
        run(["ip", "addr", "add", f"{OUTSIDE_HOST}/24", "dev", OUTSIDE])
        run(["ip", "link", "set", OUTSIDE, "up"])
        run([*in_ns, "ip", "addr", "add", f"{OUTSIDE_PEER}/24", "dev", "eth0"])
        run([*in_ns, "ip", "link", "set", "eth0", "up"])
        run([*in_ns, "ip", "route", "add", "default", "via", OUTSIDE_HOST])
        code = "import socket,time\ns=socket.create_server(('0.0.0.0',80))\ntime.sleep(600)"
        server = subprocess.Popen([*in_ns, sys.executable, "-c", code])
        yield OUTSIDE
    finally:
        if server is not None:
            server.kill()
            server.wait()
        run(["ip", "link", "del", OUTSIDE], check=False)
        run(["ip", "netns", "del", OUTSIDE_NETNS], check=False)


@pytest.fixture(scope="module")
def serving_image(real_cluster: RealCluster) -> Image:
    (image,) = build(["serving"])
    import_into_containerd(real_cluster.node.containerd_socket, [image])
    return image


def test_the_guard_is_first_in_every_hook_and_holds_its_rules(real_cluster: RealCluster) -> None:
    net = real_cluster.net
    for hook, chain in HOOKS.items():
        first = run(["iptables", "-t", "mangle", "-S", hook]).splitlines()[1]
        assert first == f"-A {hook} -j {chain}"
    for chain, rules in guard_rules(net).items():
        listed = run(["iptables", "-t", "mangle", "-S", chain]).splitlines()[1:]
        assert [line.split(maxsplit=2)[2] for line in listed[: len(rules)]] == [
            " ".join(rule) for rule in rules
        ]
    masquerading = run(["iptables-save", "-t", "nat"])
    assert not re.search(rf"-s {re.escape(net.pod_range)}.*MASQUERADE", masquerading)


def test_the_ranges_route_to_the_bridge_or_nowhere(real_cluster: RealCluster) -> None:
    net = real_cluster.net
    assert f"dev {net.bridge}" in run(["ip", "route", "get", "10.244.0.77"])
    assert f"dev {net.bridge}" in run(["ip", "route", "get", net.dns_ip])
    assert f"unreachable {net.pod_range}" in run(["ip", "route", "show"])
    elsewhere = subprocess.run(
        ["ip", "route", "get", "10.244.200.1"], capture_output=True, text=True, check=False
    )
    assert elsewhere.returncode != 0, elsewhere.stdout


def test_nothing_listens_on_an_external_address(real_cluster: RealCluster) -> None:
    net = real_cluster.net
    allowed = {"127.0.0.1", "::1", net.node_ip}
    pids = {
        str(pid) for pid in [*real_cluster.plane.pids.values(), *real_cluster.node.pids.values()]
    }
    listeners = run(["ss", "-H", "-l", "-n", "-t", "-u", "-p"]).splitlines()
    ours = [line for line in listeners if any(f"pid={pid}," in line for pid in pids)]
    assert ours, "no listener of the cluster's processes was found at all"
    for line in ours:
        address = line.split()[4].rsplit(":", 1)[0].strip("[]")
        assert address in allowed, line


def test_cluster_dns_answers_for_the_cluster_only(real_cluster: RealCluster) -> None:
    net = real_cluster.net
    inside = dns.message.make_query("kubernetes.default.svc.cluster.local", "A")
    answer = dns.query.udp(inside, net.dns_ip, timeout=5)
    assert answer.rcode() == dns.rcode.NOERROR
    assert [item.address for rrset in answer.answer for item in rrset] == ["10.96.0.1"]
    outside = dns.message.make_query("example.com", "A")
    refused = dns.query.udp(outside, net.dns_ip, timeout=5)
    assert refused.rcode() == dns.rcode.REFUSED
    assert refused.answer == []


PROBE = textwrap.dedent(
    """
    import json, socket
    def reach(host, port):
        try:
            socket.create_connection((host, port), timeout=2).close()
            return "connected"
        except OSError as error:
            return type(error).__name__
    print(json.dumps({
        "outside": reach("%(peer)s", 80),
        "host": reach("%(host)s", %(port)d),
        "api": reach("kubernetes.default.svc.cluster.local", 443),
    }))
    """
)


def test_pods_reach_the_cluster_and_nothing_beyond_it(
    real_cluster: RealCluster, outside: str, serving_image: Image
) -> None:
    plane = real_cluster.plane
    with socket.socket() as listener:  # a host service on the "external" address
        listener.bind((OUTSIDE_HOST, 0))
        listener.listen()
        port = listener.getsockname()[1]
        sent_before = _transmitted(outside)
        drops_before = _guard_drops()
        code = PROBE % {"peer": OUTSIDE_PEER, "host": OUTSIDE_HOST, "port": port}
        pod = _probe_pod(serving_image.reference, code)
        plane.kubectl("apply", "-f", "-", input=json.dumps(pod))
        plane.kubectl(
            "wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/probe", "--timeout=120s"
        )
        result = json.loads(plane.kubectl("logs", "probe").strip().splitlines()[-1])
        plane.kubectl("delete", "pod", "probe", "--wait=false")
    assert result == {"outside": "TimeoutError", "host": "TimeoutError", "api": "connected"}
    assert _transmitted(outside) == sent_before  # not even an ARP request crossed
    assert _guard_drops() > drops_before


def _probe_pod(image: str, code: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe", "namespace": "default"},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
            "containers": [
                {
                    "name": "probe",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python3", "-c", code],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


def _transmitted(interface: str) -> int:
    return int(Path(f"/sys/class/net/{interface}/statistics/tx_packets").read_text())


def _guard_drops() -> int:
    total = 0
    for chain in ("MLP-GUARD-FWD", "MLP-GUARD-HOST"):
        for line in run(["iptables", "-t", "mangle", "-L", chain, "-v", "-x", "-n"]).splitlines():
            fields = line.split()
            if len(fields) > 2 and fields[2] == "DROP":
                total += int(fields[0])
    return total


def test_the_node_network_is_the_default_one() -> None:
    net = NodeNetwork()
    assert (net.bridge, net.node_ip, net.pod_range, net.service_range) == (
        "mlp0",
        "10.244.0.1",
        "10.244.0.0/16",
        "10.96.0.0/16",
    )
