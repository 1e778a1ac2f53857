"""Where this machine sits in a multi-node run, and the checks made before torchrun is started on it.

torchrun's default (static) rendezvous is used: every node is started with the same ``--nnodes`` and
``--rdzv-endpoint HOST:PORT`` and its own ``--node-rank``; node 0 listens on PORT (a TCP store) and the
others connect to HOST:PORT. Left alone, a mistake there shows late and as a traceback: a node waits ten
minutes for a host that does not exist, or node 0 dies on a port already taken. :func:`preflight` turns each
into one line before anything is launched or written:

- the host does not resolve;
- the node rank is not in ``0..nnodes-1``;
- node 0: the port cannot be listened on at HOST (taken, or HOST is not an address of this machine);
- node 1..: nothing accepts a connection at HOST:PORT within the timeout (node 0 not started, a firewall).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from saip_bench.errors import ConfigError, SaipError

#: How long a node waits for the others (the endpoint to answer, then every node to join), by default.
DEFAULT_TIMEOUT_S = 300.0

#: Pause between two connection attempts to node 0.
_RETRY_S = 0.5


@dataclass(frozen=True)
class Nodes:
    """The machines of a run: how many, which one this is, and node 0's rendezvous address.

    Attributes:
        count: machines in the run (``--nnodes``).
        rank: this machine's place, ``0..count-1`` (``--node-rank``); node 0 hosts the rendezvous.
        endpoint: ``HOST:PORT`` of node 0, the same on every node; None on one machine.
        timeout_s: how long to wait for node 0 to answer (nodes 1..) and for every node to join.
    """

    count: int = 1
    rank: int = 0
    endpoint: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def multi(self) -> bool:
        """More than one machine: torchrun needs the static rendezvous options."""
        return self.count > 1


def parse_endpoint(text: str) -> tuple[str, int]:
    """``"node01:29500"`` -> ``("node01", 29500)`` (``"[::1]:29500"`` for an IPv6 address).

    Raises:
        ConfigError: no ``:PORT``, an empty host, or a port outside 1..65535.
    """
    host, sep, port = text.strip().rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--rdzv-endpoint {text!r}: expected HOST:PORT with a port in 1..65535")
    return host, int(port)


def _resolve(host: str, port: int, endpoint: str) -> list[tuple]:
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise SaipError(
            f"rendezvous endpoint {endpoint}: cannot resolve host {host!r} ({err.strerror})"
        ) from None


def _check_listen(addresses: list[tuple], endpoint: str) -> None:
    """Node 0: the port can be listened on at the host's address (what node 0's TCP store will do)."""
    family, kind, proto, _, address = addresses[0]
    with socket.socket(family, kind, proto) as probe:
        # As the store does: a port left in TIME_WAIT by an earlier run is usable, a listening one is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
            probe.listen(1)
        except OSError as err:
            why = err.strerror or type(err).__name__
            raise SaipError(
                f"rendezvous endpoint {endpoint}: node 0 cannot listen there ({why}); give node 0's own "
                "address and a free port"
            ) from None


def _wait_reachable(addresses: list[tuple], endpoint: str, timeout_s: float) -> None:
    """Nodes 1..: something accepts a TCP connection at the endpoint before ``timeout_s`` runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        for family, kind, proto, _, address in addresses:
            left = deadline - time.monotonic()
            with socket.socket(family, kind, proto) as probe:
                probe.settimeout(max(0.1, min(left, 5.0)))
                try:
                    probe.connect(address)
                    return
                except OSError:
                    pass
        left = deadline - time.monotonic()
        if left <= 0:
            raise SaipError(
                f"rendezvous endpoint {endpoint} not reachable after {timeout_s:g}s (is node 0 started?)"
            )
        time.sleep(min(_RETRY_S, left))


def preflight(nodes: Nodes) -> None:
    """Check a multi-node launch before torchrun starts: one :class:`SaipError` line per mistake.

    Nothing is written; on one machine (``nodes.count == 1``) nothing is checked.

    Raises:
        ConfigError: a node count below 1, a node rank out of range, a missing or malformed endpoint.
        SaipError: the host does not resolve; node 0 cannot listen on the port; nodes 1..: node 0's
            endpoint did not answer within ``nodes.timeout_s``.
    """
    if nodes.count < 1:
        raise ConfigError(f"--nnodes {nodes.count}: must be at least 1")
    if not 0 <= nodes.rank < nodes.count:
        raise ConfigError(
            f"--node-rank {nodes.rank}: out of range for --nnodes {nodes.count} (0..{nodes.count - 1})"
        )
    if not nodes.multi:
        return
    if not nodes.endpoint:
        raise ConfigError(f"--nnodes {nodes.count}: needs --rdzv-endpoint HOST:PORT (node 0's address)")
    if not nodes.timeout_s > 0:
        raise ConfigError(f"--rdzv-timeout {nodes.timeout_s:g}: must be a positive number of seconds")
    host, port = parse_endpoint(nodes.endpoint)
    addresses = _resolve(host, port, nodes.endpoint)
    if nodes.rank == 0:
        _check_listen(addresses, nodes.endpoint)
    else:
        _wait_reachable(addresses, nodes.endpoint, nodes.timeout_s)
