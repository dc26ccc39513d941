"""Real Redis topologies started by the test session: a Redis Cluster of 3 primaries and 3
replicas (`redis-server --cluster-enabled yes`, `redis-cli --cluster create`), and a primary with
a replica watched by 3 sentinels. Each can lose its primary to SIGKILL and get it back.

Timeouts are short (cluster node timeout 1 s, sentinel down-after 2 s) so that a failover takes
seconds, not the production defaults' 15-30 s. The Sentinel servers keep an append-only file and
a killed one is started again as a replica of the current primary (`LocalSentinel.restore`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import redis

from relayq.embedded_redis import find_redis_server

NODE_TIMEOUT_MS = 1000
DOWN_AFTER_MS = 2000
"""A sentinel pings every min(down-after, 1 s); at 1 s down-after the sentinels flagged a just
promoted primary down one second after every failover, and failed over again."""
WAIT_S = 30.0


def _free_port_pair() -> int:
    """A port p such that p and p + 10000 (the cluster bus) are both free."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def _until(check: object, what: str, timeout: float = WAIT_S) -> None:
    """Polls `check()` (a server's state: there is no event to await) until it is true."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except (redis.RedisError, OSError) as e:
            last = e
        time.sleep(0.1)
    raise TimeoutError(f"{what} within {timeout:.0f} s (last error: {last})")


def _clean_up(tmp: tempfile.TemporaryDirectory[str] | None) -> None:
    """Removes a topology's directories; with RELAYQ_KEEP_TOPOLOGY_LOGS=<dir>, copies them (the
    servers' and sentinels' logs and configuration) there first."""
    if tmp is None:
        return
    keep = os.environ.get("RELAYQ_KEEP_TOPOLOGY_LOGS")
    if keep:
        shutil.copytree(tmp.name, Path(keep) / Path(tmp.name).name, dirs_exist_ok=True)
    tmp.cleanup()


@dataclass
class Node:
    port: int
    directory: Path
    args: list[str]
    process: subprocess.Popen[bytes] | None = None

    def start(self, extra_args: Sequence[str] = ()) -> None:
        self.process = subprocess.Popen(
            [*self.args, *extra_args],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _until(self.ping, f"redis-server on {self.port} answers", 10)

    def ping(self) -> bool:
        with redis.Redis(port=self.port, socket_timeout=1) as r:
            return bool(r.ping())

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2)

    def stall(self, seconds: float) -> None:
        """The server stops answering anyone, its primary included, for `seconds`."""
        with redis.Redis(port=self.port, socket_timeout=seconds + 5) as r:
            r.execute_command("DEBUG", "SLEEP", seconds)

    def freeze(self, seconds: float) -> None:
        """SIGSTOP, then SIGCONT: the process is starved, as on an overloaded host, and cannot
        tell (unlike `stall`, which the server runs itself)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class LocalCluster:
    """`with LocalCluster() as c: c.url` — 3 primaries, each with one replica (by default; the
    benchmarks also start 1 primary holding every slot, and 3 without replicas)."""

    primaries: int = 3
    replicas: int = 1
    nodes: list[Node] = field(default_factory=list)
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def size(self) -> int:
        return self.primaries * (1 + self.replicas)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[:3])

    def __enter__(self) -> Self:
        self._tmp = tempfile.TemporaryDirectory(prefix="relayq-cluster-")
        server = find_redis_server()
        for _ in range(self.size):
            port = _free_port_pair()
            directory = Path(self._tmp.name) / str(port)
            directory.mkdir()
            args = [
                server,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                # a replica may always take over, however long its primary was gone
                "--cluster-replica-validity-factor", "0",
                "--save", "",
                "--appendonly", "no",
                "--repl-diskless-sync-delay", "0",
                "--enable-debug-command", "local",
                "--logfile", "redis.log",
            ]  # fmt: skip
            node = Node(port, directory, args)
            node.start()
            self.nodes.append(node)
        if self.primaries == 1 and self.replicas == 0:
            with self.nodes[0].client() as r:  # redis-cli --cluster create wants 3 primaries
                r.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        else:
            addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
            replicas = ["--cluster-replicas", str(self.replicas), "--cluster-yes"]
            subprocess.run(
                ["redis-cli", "--cluster", "create", *addresses, *replicas],
                check=True,
                stdout=subprocess.DEVNULL,
                timeout=60,
            )
        self.wait_healthy()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for node in self.nodes:
            node.stop()
        _clean_up(self._tmp)

    def node(self, port: int) -> Node:
        return next(n for n in self.nodes if n.port == port)

    def alive(self) -> list[Node]:
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    def roles(self) -> dict[int, str]:
        """Port -> "master" or "slave", as a live node sees the cluster (failed nodes left out)."""
        with self.alive()[0].client() as r:
            raw = r.execute_command("CLUSTER", "NODES")
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        roles: dict[int, str] = {}
        for line in text.splitlines():
            fields = line.split()
            flags = fields[2].split(",")
            if "fail" in flags or "fail?" in flags or "noaddr" in flags:
                continue
            roles[int(fields[1].split(":")[1].split("@")[0])] = (
                "master" if "master" in flags else "slave"
            )
        return roles

    def primary_of(self, key: str) -> Node:
        with self.alive()[0].client() as r:
            slot = int(r.execute_command("CLUSTER", "KEYSLOT", key))
            for start, end, primary, *_ in r.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return self.node(int(primary[1]))
        raise LookupError(key)

    def replica_of(self, primary: Node) -> Node:
        for node in self.alive():
            info = node.client().info("replication")
            if info.get("role") == "slave" and info.get("master_port") == primary.port:
                return node
        raise LookupError(f"no replica of {primary.port}")

    def primary_nodes(self) -> list[Node]:
        return [self.node(p) for p, role in self.roles().items() if role == "master"]

    def wait_healthy(self) -> None:
        """Every node up and agreeing: cluster_state ok, 3 primaries with a replica each."""

        def healthy() -> bool:
            for node in self.alive():
                with node.client() as r:
                    if b"cluster_state:ok" not in r.execute_command("CLUSTER", "INFO"):
                        return False
            roles = self.roles()
            return len(roles) == self.size and list(roles.values()).count("master") == (
                self.primaries
            )

        _until(healthy, "the cluster is healthy")
        if self.replicas:
            _until(lambda: all(replica_online(p) for p in self.primary_nodes()), "replicas in sync")

    def fail_over(self, victim: Node) -> None:
        """SIGKILLs `victim` (a primary) and returns once its replica has taken its slots."""
        victim.kill()
        _until(
            lambda: (
                victim.port not in self.roles()
                and list(self.roles().values()).count("master") == self.primaries
                and all(
                    b"cluster_state:ok" in n.client().execute_command("CLUSTER", "INFO")
                    for n in self.alive()
                )
            ),
            f"a replica replaces primary {victim.port}",
        )

    def restore(self, node: Node) -> None:
        """Starts a killed node again: it rejoins as a replica of its old replica."""
        node.start()
        self.wait_healthy()

    def flush(self) -> None:
        for node in self.primary_nodes():
            with node.client() as r:
                r.flushall()


def r_info(node: Node, field_name: str) -> str:
    with node.client() as r:
        info = r.info("replication")
    return str(info.get(field_name, ""))


def replica_online(primary: Node) -> bool:
    """`primary` has one replica, done with its initial sync."""
    with primary.client() as r:
        info = r.info("replication")
    replica = info.get("slave0")
    return (
        info.get("connected_slaves") == 1
        and isinstance(replica, dict)
        and (replica.get("state") == "online")
    )


SERVICE = "relayq"


@dataclass
class LocalSentinel:
    """`with LocalSentinel() as s: s.url` — a primary, one replica, three sentinels."""

    servers: list[Node] = field(default_factory=list)
    sentinels: list[Node] = field(default_factory=list)
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}"

    def __enter__(self) -> Self:
        self._tmp = tempfile.TemporaryDirectory(prefix="relayq-sentinel-")
        server = find_redis_server()
        primary_port = _free_port_pair()
        for i in range(2):
            port = primary_port if i == 0 else _free_port_pair()
            directory = Path(self._tmp.name) / f"server-{port}"
            directory.mkdir()
            args = [
                server, "--port", str(port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "yes", "--logfile", "redis.log",
                "--repl-diskless-sync-delay", "0",
            ]  # fmt: skip
            if i == 1:
                args += ["--replicaof", "127.0.0.1", str(primary_port)]
            node = Node(port, directory, args)
            node.start()
            self.servers.append(node)
        for _ in range(3):
            port = _free_port_pair()
            directory = Path(self._tmp.name) / f"sentinel-{port}"
            directory.mkdir()
            conf = directory / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\nlogfile sentinel.log\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} 10000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            node = Node(port, directory, [server, str(conf), "--sentinel"])
            node.start()
            self.sentinels.append(node)
        _until(lambda: replica_online(self.servers[0]), "the replica syncs")
        _until(self._sentinels_agree, "the sentinels see the replica and each other")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for node in (*self.sentinels, *self.servers):
            node.stop()
        _clean_up(self._tmp)

    def primary(self) -> Node:
        with self.sentinels[0].client() as r:
            _, port = r.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
        return next(n for n in self.servers if n.port == int(port))

    def _sentinels_agree(self) -> bool:
        for sentinel in self.sentinels:
            with sentinel.client() as r:
                master = r.execute_command("SENTINEL", "MASTER", SERVICE)
            info = dict(zip(master[::2], master[1::2], strict=True))
            if info[b"num-slaves"] != b"1" or info[b"num-other-sentinels"] != b"2":
                return False
        return True

    def fail_over(self) -> Node:
        """SIGKILLs the primary; returns it once the sentinels have promoted the replica."""
        victim = self.primary()
        victim.kill()
        self.await_promotion(victim)
        return victim

    def await_promotion(self, victim: Node) -> None:
        _until(lambda: self.primary() is not victim, "the sentinels promote the replica")
        _until(lambda: r_info(self.primary(), "role") == "master", "the new primary is master")

    def restore(self, node: Node) -> None:
        """Starts a killed server again the way a careful supervisor does (the Redis Helm charts'
        start-up script, say): once every sentinel names the new primary, with its own data back
        from its append-only file, as a replica of that primary.

        Restarted empty, as a primary, it would be promotable before its first sync: a second
        failover within seconds (a primary starved for longer than down-after is enough) would then
        make the empty server the primary, and every replica would copy its empty dataset.
        `test_sentinel` has the case."""
        primary = self.primary()
        _until(lambda: self._all_sentinels_name(primary), "every sentinel names the new primary")
        node.start(extra_args=["--replicaof", "127.0.0.1", str(primary.port)])
        _until(lambda: replica_online(self.primary()), "it rejoins as a replica")
        _until(self._sentinels_agree, "the sentinels agree again")

    def settle(self) -> None:
        """Waits until the sentinels' primary has its replica in sync and they all agree: after
        a primary was failed over while alive, the sentinels demote it themselves once it answers
        (and, on a loaded host, may fail over more than once before that)."""
        _until(lambda: replica_online(self.primary()), "a primary with its replica in sync", 60)
        _until(self._sentinels_agree, "the sentinels agree again", 60)

    def _all_sentinels_name(self, primary: Node) -> bool:
        for sentinel in self.sentinels:
            with sentinel.client() as r:
                _, port = r.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
            if int(port) != primary.port:
                return False
        return True
