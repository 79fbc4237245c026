"""An Icinga 2 cluster on loopback for the distributed contrib test: a master and an
agent, each a foreground ``icinga2 daemon`` with its own config and data tree.

The PKI has the layout ``icinga2 pki new-ca`` / ``new-cert`` / ``sign-csr`` leave (the
CA in the master's DataDir/ca, ca.crt plus the node's own certificate and key in each
node's DataDir/certs), made in-process with cryptography. Nothing under /etc, /var or /run is read
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
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from support import daemons as d
from support import pki

API_USER = "cluster-test"
API_PASSWORD = "cluster-test-api"


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
            'object FileLogger "main-log" {\n'
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


def _node_cert(ca: pki.Cert, name: str) -> pki.Cert:
    """What ``icinga2 pki sign-csr`` issues: CN and DNS SAN = the endpoint name, no
    extended key usage (the same certificate serves as TLS server and client)."""
    key = pki.cached_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(pki.NOW - pki.days(1))
        .not_valid_after(pki.NOW + pki.days(397))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return pki.Cert(cert, key)


def make_pki(master: Node, nodes: list[Node]) -> None:
    """The files ``icinga2 pki new-ca`` / ``new-cert`` / ``sign-csr`` leave: the CA in
    the master's DataDir/ca, and ca.crt, NodeName.crt and NodeName.key in every node's
    DataDir/certs.

    Made in-process: icinga2 pki makes 4096-bit RSA keys, which took 2 s to 25 s each
    on a loaded 2-core machine; the daemons do not care how the files were made.
    """
    ca = pki.make_ca("Icinga CA")
    ca_dir = master.data / "ca"
    pki.write_server_files(ca_dir, "ca", ca)
    for node in nodes:
        pki.write_server_files(node.certs, node.name, _node_cert(ca, node.name))
        pki.write_ca(node.certs, ca)
