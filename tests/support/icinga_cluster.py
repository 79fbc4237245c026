"""An Icinga 2 cluster on loopback for the distributed contrib test: a master and an
agent, each a foreground ``icinga2 daemon`` with its own config and data tree.

The PKI is made the way an admin makes it, with ``icinga2 pki new-ca`` in the master's
DataDir/ca, ``new-cert`` and ``sign-csr`` for each node, and each node gets ca.crt plus
its own certificate and key in DataDir/certs. Nothing under /etc, /var or /run is read
or written: every path goes in as a -D define (see ``daemons.Icinga2``), ZonesDir too.

The REST API of a node is read and driven with ``get``/``post`` (an ApiUser made by the
test); the tests poll it with ``daemons.wait_for``, never sleep.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from support import daemons as d
from support import pki

API_USER = "cluster-test"
API_PASSWORD = "cluster-test-api"
PKI_TIMEOUT = 60.0


class Node(d.Icinga2):
    """One cluster member: ``name`` is its Endpoint name and certificate CN."""

    def __init__(self, root: Path, name: str, zone: str) -> None:
        super().__init__(root)
        self.name = name
        self.zone = zone
        self.zones_dir = self.etc / "zones.d"
        self.zones_dir.mkdir(parents=True, exist_ok=True)
        self.certs = self.data / "certs"
        self.certs.mkdir(parents=True, exist_ok=True)
        self.api_port = d.free_port()
        self.config = self.etc / "icinga2.conf"

    def defines(self) -> list[str]:
        return [*super().defines(), f"-DZonesDir={self.zones_dir}"]

    def quick_certs(self) -> None:
        """A throwaway CA and node certificate made in-process, for ``daemon -C`` only
        (the ApiListener wants them to exist; the cluster itself uses ``make_pki``)."""
        ca = pki.make_ca("check_imap icinga2 validation CA")
        pki.write_server_files(self.certs, self.name, pki.make_leaf(ca, (self.name,), cn=self.name))
        pki.write_ca(self.certs, ca)

    def node_head(self) -> str:
        """constants.conf and the ITL, as ``icinga2 node setup`` leaves them."""
        return (
            'const PluginDir = "/usr/lib/nagios/plugins"\n'
            'const PluginContribDir = "/usr/lib/nagios/plugins"\n'
            f'const NodeName = "{self.name}"\n'
            f'const ZoneName = "{self.zone}"\n'
            'const TicketSalt = ""\n'
            "include <itl>\n"
            "include <plugins>\n"
            "object FileLogger \"main-log\" {\n"
            '  path = LogDir + "/icinga2.log"\n'
            '  severity = "notice"\n'
            "}\n"
        )

    def bind(self, api_conf: str) -> str:
        """A contrib ApiListener on this node's loopback port (the only change)."""
        return d.substitute(
            api_conf,
            'object ApiListener "api" {\n',
            f'object ApiListener "api" {{\n\tbind_host = "{d.HOST}"\n\tbind_port = {self.api_port}\n',
        )

    def start_node(self) -> d.Daemon:
        return self.start(self.config, d.daemon_env(self.root))

    def kill(self) -> None:
        """SIGKILL to the daemon's whole process group: a crash, not a clean stop."""
        daemon = self.daemon
        assert daemon is not None and daemon.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(daemon.pid, signal.SIGKILL)
        daemon.stop()  # reaps it and anything left in its group

    # ------------------------------------------------------------------ REST API

    def _request(self, path: str, body: dict[str, Any] | None = None) -> Any:
        ctx = ssl.create_default_context(cafile=str(self.certs / "ca.crt"))
        ctx.check_hostname = False  # the node certificate names the node, not 127.0.0.1
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"https://{d.HOST}:{self.api_port}/v1/{path}", data)
        request.add_header("Accept", "application/json")
        if body is not None:
            request.add_header("Content-Type", "application/json")
        token = base64.b64encode(f"{API_USER}:{API_PASSWORD}".encode()).decode()
        request.add_header("Authorization", "Basic " + token)
        with urllib.request.urlopen(request, timeout=5, context=ctx) as response:  # noqa: S310
            return json.load(response)

    def get(self, kind: str, *attrs: str) -> dict[str, dict[str, Any]]:
        """``{name: attrs}`` of all objects of ``kind``; empty while the API is not up."""
        query = "&".join(f"attrs={a}" for a in attrs)
        try:
            data = self._request(f"objects/{kind}?{query}")
        except (OSError, urllib.error.URLError):
            return {}
        return {item["name"]: item["attrs"] for item in data["results"]}

    def post(self, action: str, body: dict[str, Any]) -> Any:
        return self._request(f"actions/{action}", body)

    def api_user(self) -> str:
        return (
            f'object ApiUser "{API_USER}" {{\n'
            f'  password = "{API_PASSWORD}"\n'
            '  permissions = [ "*" ]\n'
            "}\n"
        )


# --------------------------------------------------------------------------- PKI


def _pki(node: Node, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(d.ICINGA2), "pki", *args, *node.defines()],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=node.root,
    )


def _finish(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        out, _ = proc.communicate(timeout=PKI_TIMEOUT)
        assert proc.returncode == 0, f"{proc.args}: rc={proc.returncode}\n{out}"


def make_pki(master: Node, nodes: list[Node]) -> None:
    """``icinga2 pki new-ca`` on the master, a signed certificate for every node.

    The CA and the CSRs do not depend on each other, so their RSA keys are made in
    parallel (about 2 s for the CA's 4096 bits, 1 s per node).
    """
    csrs = {node.name: node.certs / f"{node.name}.csr" for node in nodes}
    procs = [_pki(master, "new-ca")]
    for node in nodes:
        key, csr = node.certs / f"{node.name}.key", csrs[node.name]
        procs.append(_pki(node, "new-cert", "--cn", node.name, "--key", str(key), "--csr", str(csr)))
    _finish(procs)
    ca = (master.data / "ca" / "ca.crt").read_bytes()
    signs = []
    for node in nodes:
        cert = node.certs / f"{node.name}.crt"
        signs.append(_pki(master, "sign-csr", "--csr", str(csrs[node.name]), "--cert", str(cert)))
        (node.certs / "ca.crt").write_bytes(ca)
    _finish(signs)
