"""contrib/icinga2/distributed/ on a real two-node Icinga 2 cluster on loopback.

- ``icinga2 daemon -C`` accepts the master's whole example tree (zones.conf, the global
  zone with check_imap.conf, zones.d/master and zones.d/satellite).
- A master and an agent, each a foreground icinga2 with its own tree and a PKI made
  with ``icinga2 pki``: the master syncs the global zone (check_imap.conf and the
  distributed templates) to the agent, schedules check_imap against the real Dovecot,
  and the agent runs it (command_endpoint). The result is read back over the master's
  REST API: check_source is the agent, with state, first line and perfdata.
- The agent is killed: the master's cluster health (cluster-zone) goes CRITICAL and the
  IMAP service becomes unreachable (the contrib Dependency). The agent is started
  again: cluster health and the IMAP service recover, again run by the agent.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support import daemons as d
from support.assertions import NUM, times
from support.dovecot import Dovecot
from support.icinga_cluster import Node, make_pki

pytestmark = pytest.mark.daemons

ICINGA2_DIR = d.CONTRIB / "icinga2"
DIST = ICINGA2_DIR / "distributed"
MASTER = "master1.example.org"
AGENT = "mail1.example.org"
SERVICE = f"{AGENT}!imap"
HEALTH = f"{AGENT}!agent-health"
TEMPLATES = "check_imap-distributed.conf"
START_TIMEOUT = 30.0  # cluster up, config synced, agent reloaded, first result back
EVENT_TIMEOUT = 15.0


def fast(text: str) -> str:
    """The contrib intervals (1m, 30s) as 1s: the same objects, on a test's time scale."""
    text = d.substitute(text, "check_interval = 1m", "check_interval = 1s", count=None)
    return d.substitute(text, "retry_interval = 30s", "retry_interval = 1s", count=None)


def zones_conf(node_dir: str, master_port: int | None = None) -> str:
    text = (DIST / node_dir / "zones.conf").read_text()
    if master_port is None:
        return text
    text = d.substitute(text, 'host = "192.0.2.10"', f'host = "{d.HOST}"')
    return d.substitute(text, "port = 5665", f"port = {master_port}")


def master_tree(master: Node, fast_intervals: bool) -> None:
    """zones.d as the README says: check_imap.conf copied unchanged into the global zone."""
    global_zone = master.zones_dir / "global-templates"
    global_zone.mkdir(parents=True, exist_ok=True)
    shutil.copy(ICINGA2_DIR / "check_imap.conf", global_zone / "check_imap.conf")
    templates = (DIST / "master/zones.d/global-templates" / TEMPLATES).read_text()
    (global_zone / TEMPLATES).write_text(fast(templates) if fast_intervals else templates)
    for zone in ("master", "satellite"):
        (master.zones_dir / zone).mkdir(exist_ok=True)


def master_config(master: Node, extra: str = "") -> Path:
    api = master.bind((DIST / "master/features/api.conf").read_text())
    master.write("zones.conf", zones_conf("master"))
    master.write("api.conf", api)
    return master.write(
        "icinga2.conf",
        master.node_head()
        + f'include "{master.etc / "zones.conf"}"\n'
        + f'include "{master.etc / "api.conf"}"\n'
        + 'object CheckerComponent "checker" { }\n'
        + master.api_user()
        + extra,
    )


# --------------------------------------------------------------------------- static


def test_master_example_tree_validates(tmp_path: Path) -> None:
    d.require(d.ICINGA2)
    master = Node(tmp_path, MASTER, "master")
    master.quick_certs()
    master_tree(master, fast_intervals=False)
    for zone in ("master", "satellite"):
        shutil.copy(DIST / f"master/zones.d/{zone}/hosts.conf", master.zones_dir / zone)
    result = master.validate(master_config(master))
    assert result.returncode == 0, result.stdout + result.stderr
    # mail1: imap, imaps (on its agent) and agent-health; mail2: imaps (by the satellite)
    assert "Instantiated 4 Services" in result.stdout, result.stdout
    assert "Instantiated 2 Dependencies" in result.stdout, result.stdout
    assert "Instantiated 4 Zones" in result.stdout, result.stdout


def test_command_endpoint_outside_a_zone_is_rejected(tmp_path: Path) -> None:
    """The README's first trap: the same Host in conf.d (no zone) fails validation."""
    d.require(d.ICINGA2)
    master = Node(tmp_path, MASTER, "master")
    master.quick_certs()
    master_tree(master, fast_intervals=False)
    hosts = master.write("hosts.conf", (DIST / "master/zones.d/master/hosts.conf").read_text())
    result = master.validate(master_config(master, f'include "{hosts}"\n'))
    assert result.returncode == 1, result.stdout
    assert "Checkable with command endpoint requires a zone" in result.stdout, result.stdout


# --------------------------------------------------------------------------- real cluster


@dataclass
class Cluster:
    master: Node
    agent: Node
    bindir: Path
    bed: Dovecot

    def describe(self) -> str:
        return (
            f"=== master\n{self.master.describe()}\n=== agent\n{self.agent.describe()}\n"
            + d.tail(self.agent.log / "icinga2.log", 15)
        )

    def service(self, name: str) -> dict[str, Any] | None:
        assert self.master.daemon is not None
        self.master.daemon.assert_running()
        attrs = ("state", "last_check_result", "last_reachable", "last_check")
        return self.master.get("services", *attrs).get(name)

    def connected(self) -> bool | None:
        endpoint = self.master.get("endpoints", "connected").get(AGENT)
        return None if endpoint is None else bool(endpoint["connected"])

    def check_now(self, name: str) -> None:
        """What "Check now" in Icinga Web does: reschedule the check to run at once."""
        result = self.master.post(
            "reschedule-check", {"type": "Service", "service": name, "force": True}
        )
        assert result["results"][0]["code"] == 200, result


@pytest.fixture(scope="module")
def cluster(named_dovecot: Dovecot) -> Iterator[Cluster]:
    d.require(d.ICINGA2)
    root = d.world_dir("icinga2-cluster")
    master = Node(root / "master", MASTER, "master")
    agent = Node(root / "agent", AGENT, AGENT)
    try:
        make_pki(master, [master, agent])
        bindir = d.install_commands(root)
        main = named_dovecot.named
        master_tree(master, fast_intervals=True)
        (master.zones_dir / "master" / "hosts.conf").write_text(f"""
object Host "{AGENT}" {{
  import "imap-agent-host"
  check_command = "dummy"  /* the contrib template pings; the test's Host is loopback */
  address = "{main.host}"
  vars.check_imap_command = "{bindir}/check_imap"
  vars.imap["imap"] = {{
    check_imap_address = "{main.host}"
    check_imap_port = {main.plain_port}
    check_imap_ipv4 = true
    check_imap_timeout = 5
  }}
  /* as the contrib example for mail2: TLS, verifying the name the certificate carries */
  vars.imap["imaps"] = {{
    check_imap_address = "{main.host}"
    check_imap_port = {main.tls_port}
    check_imap_mode = "tls"
    check_imap_sni = "{d.REAL_NAME}"
    check_imap_ca_file = "{main.ca_file}"
    check_imap_ipv4 = true
    check_imap_timeout = 5
  }}
}}
""")
        config = master_config(master)
        result = master.validate(config)
        assert result.returncode == 0, result.stdout + result.stderr

        agent.write("zones.conf", zones_conf("agent", master.api_port))
        agent.write("api.conf", agent.bind((DIST / "agent/features/api.conf").read_text()))
        agent.write(
            "icinga2.conf",
            agent.node_head()
            + f'include "{agent.etc / "zones.conf"}"\n'
            + f'include "{agent.etc / "api.conf"}"\n',
        )
        result = agent.validate(agent.config)
        assert result.returncode == 0, result.stdout + result.stderr

        master.start_node()
        agent.start_node()
        yield Cluster(master, agent, bindir, named_dovecot)
    finally:
        codes = {n.name: n.daemon.stop() for n in (agent, master) if n.daemon is not None}
        report = f"{master.describe()}\n{agent.describe()}"
        shutil.rmtree(root, ignore_errors=True)
        assert all(code == 0 for code in codes.values()), f"{codes}\n{report}"


def result_from_agent(
    cluster: Cluster, since: float = 0.0, name: str = SERVICE, timeout: float = START_TIMEOUT
) -> dict[str, Any]:
    """The IMAP service once its latest result is check_imap's, run by the agent after
    ``since``. Before the agent has the synced CheckCommand it answers UNKNOWN "Check
    command 'check_imap' does not exist": that is not the plugin's result yet."""

    def probe() -> dict[str, Any] | None:
        service = cluster.service(name)
        lcr = (service or {}).get("last_check_result") or {}
        ran = lcr.get("check_source") == AGENT and lcr.get("output", "").startswith("IMAP ")
        return service if ran and lcr["execution_start"] > since else None

    def describe() -> str:
        return f"{name}: {cluster.service(name)}\n{cluster.describe()}"

    return d.wait_for(probe, f"{name} checked by {AGENT}", timeout, describe)


def assert_plugin_ok(cluster: Cluster, service: dict[str, Any]) -> None:
    main = cluster.bed.named
    lcr = service["last_check_result"]
    assert service["state"] == 0, lcr
    assert lcr["exit_status"] == 0, lcr
    assert lcr["check_source"] == AGENT, lcr
    first_line = rf"IMAP OK - {re.escape(main.host)}:{main.plain_port} answered in {NUM}s, logout: BYE \+ tagged OK "
    assert re.fullmatch(first_line, lcr["output"]), lcr["output"]
    assert re.fullmatch(times(""), " ".join(lcr["performance_data"])), lcr["performance_data"]
    assert lcr["command"] == [
        str(cluster.bindir / "check_imap"), "-H", main.host, "-4", "-p", str(main.plain_port), "-t", "5",
    ]  # fmt: skip


def test_agent_runs_check_imap_for_the_master(cluster: Cluster) -> None:
    service = result_from_agent(cluster)
    assert_plugin_ok(cluster, service)
    assert service["last_reachable"] is True, service
    synced = cluster.agent.data / "api/zones/global-templates/_etc/check_imap.conf"
    assert synced.read_text() == (ICINGA2_DIR / "check_imap.conf").read_text()


def test_agent_verifies_the_certificate_for_the_real_name(cluster: Cluster) -> None:
    """The certificate names only imap.test; the agent connects to 127.0.0.1 and
    passes the name on (check_imap_sni), so the TLS check is OK on the agent."""
    main = cluster.bed.named
    name = f"{AGENT}!imaps"
    result_from_agent(cluster)  # the cluster is up and the agent has the CheckCommand
    since = time.time()
    cluster.check_now(name)
    lcr = result_from_agent(cluster, since, name, timeout=2 * START_TIMEOUT)["last_check_result"]
    assert (lcr["exit_status"], lcr["check_source"]) == (0, AGENT), lcr
    assert re.match(
        rf"IMAP OK - {re.escape(main.host)}:{main.tls_port} answered in {NUM}s, TLSv1\.3, "
        rf"certificate '{re.escape(d.REAL_NAME)}' expires ",
        lcr["output"],
    ), lcr["output"]
    assert lcr["command"][lcr["command"].index("--sni") + 1] == d.REAL_NAME, lcr["command"]


def test_killed_agent_is_unreachable_then_recovers(cluster: Cluster) -> None:
    result_from_agent(cluster)  # the cluster is up (also when this test runs alone)
    cluster.agent.kill()

    d.wait_for(
        lambda: cluster.connected() is False,
        f"{AGENT} disconnected",
        EVENT_TIMEOUT,
        cluster.describe,
    )

    def health(state: int) -> dict[str, Any] | None:
        service = cluster.service(HEALTH)
        return service if service and service["state"] == state else None

    down = d.wait_for(lambda: health(2), "agent-health CRITICAL", EVENT_TIMEOUT, cluster.describe)
    output = down["last_check_result"]["output"]
    assert re.fullmatch(rf"Zone '{re.escape(AGENT)}' is not connected\. Log lag: .+", output), (
        output
    )

    # A check that was on its way to the agent when it died is rescheduled only after
    # the command's timeout + 30 s; "Check now" evaluates the dependency at once.
    cluster.check_now(SERVICE)

    def unreachable() -> dict[str, Any] | None:
        service = cluster.service(SERVICE)
        return service if service and service["last_reachable"] is False else None

    gone = d.wait_for(unreachable, f"{SERVICE} unreachable", EVENT_TIMEOUT, cluster.describe)
    assert gone["last_check_result"]["check_source"] == AGENT, gone  # no result meanwhile

    restarted = time.time()
    cluster.agent.start_node()
    d.wait_for(
        lambda: cluster.connected() is True, f"{AGENT} reconnected", START_TIMEOUT, cluster.describe
    )
    up = d.wait_for(lambda: health(0), "agent-health OK", EVENT_TIMEOUT, cluster.describe)
    output = up["last_check_result"]["output"]
    assert re.fullmatch(rf"Zone '{re.escape(AGENT)}' is connected\. Log lag: .+", output), output

    cluster.check_now(SERVICE)
    service = result_from_agent(cluster, since=restarted)
    assert_plugin_ok(cluster, service)
    assert service["last_reachable"] is True, service
