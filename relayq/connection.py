"""Redis connections, and the one layer that retries Redis commands.

Every Redis client of relayq (producer, worker, gateway) comes from `connect()`, and every
`RELAYQ_REDIS_URL` is read by `parse_redis_url()`:

    redis://[user:password@]host:port[/db]          one server (also rediss://, unix://)
    redis+cluster://[user:password@]host:port,host:port,...          Redis Cluster (seed nodes)
    redis+sentinel://[user:password@]host:port,host:port,.../service[/db]    Sentinel
    (rediss+cluster:// and rediss+sentinel:// for TLS)

Query options that relayq reads itself (the rest go to redis-py as in `Redis.from_url`):
`ack_replicas` (how many replicas must hold a write that has to survive a failover; default 1
on cluster and sentinel URLs, 0 otherwise), `ack_timeout_ms` (how long to wait for them, default
1000), and for sentinel `sentinel_username` / `sentinel_password`.

Retries: on one server or behind Sentinel, redis-py's own `Retry`, with equal-jitter
exponential backoff, re-runs a command whose connection dropped or timed out, and re-dials a
server that refuses connections (an OSError, which redis-py alone would not retry), for 16 to
31 s in all. Behind Sentinel each dial is one attempt of that retry: it asks the sentinels for the
primary again and checks `ROLE` on the server they name (`_SentinelConnection`). On
a cluster, redis-py's cluster client re-reads the slot map and retries after every connection
error; relayq gives it enough attempts, each with a short jittered connect backoff, to span
about the same budget, which covers a replica's promotion. Above this layer nobody loops: code
either lets the error through (translated where it enters, e.g. `relayq.errors.RedisUnavailable`)
or, in the worker, treats it as the end of the attempt.

`replicated()` is where an acknowledgement must survive a failover: it runs commands on one
connection to the primary of one slot, then a barrier write and `WAIT` on that same connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, unquote

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, PipelineCommand, RedisCluster
from redis.asyncio.connection import SSLConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelManagedConnection
from redis.backoff import EqualJitterBackoff, NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    NoScriptError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.utils import str_if_bytes

from relayq.schemas.constants import barrier_key

REDIS_ERRORS = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterDownError,  # a cluster between a primary's failure and its replica's promotion
    SlotNotCoveredError,
)

BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 2.0
RETRIES = 20
RETRY_BUDGET_S = sum(min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**i) for i in range(RETRIES))
"""The longest a command waits out an outage (31 s; equal jitter waits at least half of each
step) before its caller sees the error."""

# a cluster connection gives up on a dead node quickly (the slot map may point elsewhere now)...
CLUSTER_CONNECT_RETRIES = 3
CLUSTER_CONNECT_CAP_S = 0.4
# ... and the cluster client retries the command, with a fresh slot map, for about the budget
CLUSTER_ATTEMPTS = 60

DEFAULT_ACK_TIMEOUT_MS = 1000
BARRIER_TTL_MS = 60_000

Topology = Literal["standalone", "cluster", "sentinel"]


@dataclass(frozen=True)
class Ack:
    """How many replicas must hold a write before it is acknowledged, and how long to wait."""

    replicas: int = 0
    timeout_ms: int = DEFAULT_ACK_TIMEOUT_MS

    @property
    def required(self) -> bool:
        return self.replicas > 0


@dataclass(frozen=True)
class RedisTarget:
    """A parsed `RELAYQ_REDIS_URL`."""

    topology: Topology
    url: str
    nodes: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ack: Ack = Ack()
    options: dict[str, str] = field(default_factory=dict)


def retry_policy() -> Retry:
    return Retry(
        EqualJitterBackoff(cap=BACKOFF_CAP_S, base=BACKOFF_BASE_S),
        retries=RETRIES,
        # a refused or reset dial surfaces from Connection._connect as a bare OSError; redis-py
        # annotates RedisError subclasses only, but Retry catches whatever tuple it is given
        supported_errors=(RedisConnectionError, RedisTimeoutError, OSError),  # type: ignore[arg-type]
    )


def parse_redis_url(url: str) -> RedisTarget:
    """Reads any URL `connect()` accepts; ValueError, naming what is wrong, for anything else."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"{url!r} is not a Redis URL (redis://host:port, see relayq.connection)")
    base, _, query = rest.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True))
    relayq_options: dict[str, str] = {
        k: options.pop(k) for k in ("ack_replicas", "ack_timeout_ms") if k in options
    }
    match scheme:
        case "redis" | "rediss" | "unix":
            plain = f"{scheme}://{base}" + (f"?{_query(options)}" if options else "")
            return RedisTarget("standalone", plain, ack=_ack(relayq_options, default=0))
        case "redis+cluster" | "rediss+cluster":
            topology: Topology = "cluster"
        case "redis+sentinel" | "rediss+sentinel":
            topology = "sentinel"
        case _:
            raise ValueError(
                f"unknown scheme {scheme!r} in {url!r}: use redis://, rediss://, unix://, "
                "redis+cluster:// or redis+sentinel://"
            )
    userinfo, at, hostpart = base.rpartition("@")
    if not at:
        hostpart = base
    hosts, _, path = hostpart.partition("/")
    nodes = tuple(_host_port(h, url) for h in hosts.split(",") if h)
    if not nodes:
        raise ValueError(f"{url!r} names no host:port")
    username, password = _credentials(userinfo) if at else (None, None)
    segments = [unquote(s) for s in path.split("/") if s]
    service, db = "", 0
    if topology == "sentinel":
        if not segments:
            raise ValueError(f"{url!r}: a sentinel URL ends with /<service name>[/<db>]")
        service = segments[0]
        db = _db(segments[1:], url)
    elif segments:
        raise ValueError(f"{url!r}: a cluster URL has no path (a cluster has only db 0)")
    return RedisTarget(
        topology,
        url,
        nodes=nodes,
        service=service,
        db=db,
        username=username,
        password=password,
        tls=scheme.startswith("rediss"),
        ack=_ack(relayq_options, default=1),
        options=options,
    )


def connect(
    url: str, *, max_connections: int | None = None, retries: bool = True, **options: Any
) -> Redis:
    """A client for `url` that rides out a restart, a dropped connection or a failover
    (`retries=False`: one that fails at once, for a reachability probe).

    On a cluster URL this is a `RedisCluster`: it speaks every command relayq sends for one
    slot at a time and is typed as `Redis` so that callers need no two code paths; the few
    places that differ (pub/sub, `replicated`) ask `is_cluster()`. With `max_connections`, the
    pool is bounded: on one server a caller waits (up to 10 s) for a free connection instead of
    opening another one; behind Sentinel and on a cluster (per node) it gets an error.
    """
    target = parse_redis_url(url)
    common: dict[str, Any] = {"socket_keepalive": True, "health_check_interval": 15, **options}
    policy = retry_policy() if retries else Retry(NoBackoff(), 0)
    match target.topology:
        case "standalone":
            resilience: dict[str, Any] = {
                "retry": policy,
                "retry_on_error": [RedisConnectionError, RedisTimeoutError],
            }
            if max_connections is not None:
                pool = BlockingConnectionPool.from_url(
                    target.url,
                    max_connections=max_connections,
                    timeout=10,
                    **resilience,
                    **common,
                )
                return Redis.from_pool(pool)
            client: Redis = Redis.from_url(target.url, **resilience, **common)
            return client
        case "sentinel":
            sentinel_auth = {
                k.removeprefix("sentinel_"): v
                for k, v in target.options.items()
                if k in ("sentinel_username", "sentinel_password")
            }
            sentinel = Sentinel(  # type: ignore[no-untyped-call]
                list(target.nodes),
                sentinel_kwargs={"socket_timeout": 1.0, "ssl": target.tls, **sentinel_auth},
            )
            if max_connections is not None:
                common["max_connections"] = max_connections
            primary: Redis = sentinel.master_for(
                target.service,
                connection_class=_SentinelSSLConnection if target.tls else _SentinelConnection,
                db=target.db,
                username=target.username,
                password=target.password,
                ssl=target.tls,
                retry=policy,
                retry_on_error=[RedisConnectionError, RedisTimeoutError],
                **common,
            )
            return primary
        case "cluster":
            cluster = _SeededCluster(
                startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
                username=target.username,
                password=target.password,
                ssl=target.tls,
                retry=Retry(
                    EqualJitterBackoff(cap=CLUSTER_CONNECT_CAP_S, base=BACKOFF_BASE_S),
                    retries=CLUSTER_CONNECT_RETRIES if retries else 0,
                ),
                cluster_error_retry_attempts=CLUSTER_ATTEMPTS if retries else 0,
                max_connections=max_connections or 2**31,
                **common,
            )
            cluster.relayq_seeds = target.nodes
            return cast(Redis, cluster)


class _SentinelConnection(SentinelManagedConnection):
    """A connection to the primary the sentinels name, asked again on every dial.

    redis-py's own dials the named address under the connection's retry policy, so a
    connection that was told, in the second after the primary died, to dial that primary kept
    re-dialing the dead address for the whole retry budget and, when a supervisor started the
    server again meanwhile, connected to it: as an empty primary (writes lost when the
    sentinels demote it) or as a replica (READONLY for as long as the connection lived). Here
    one dial is one attempt; the retry around it (`SentinelManagedConnection.connect`) asks the
    sentinels again. Once connected, `ROLE` must say master (the Sentinel client spec's step 3),
    unless the user may not run it (it is an @admin command).
    """

    async def connect_to(self, address: tuple[str, int]) -> None:
        self.host, self.port = address
        policy, self.retry = self.retry, Retry(NoBackoff(), 0)
        try:
            await super().connect_to(address)  # type: ignore[no-untyped-call]
        finally:
            self.retry = policy
        if self.connection_pool.is_master:
            await self.send_command("ROLE")
            try:
                role = str_if_bytes((await self.read_response())[0])
            except ResponseError:  # ROLE is @admin: a user without it has the sentinels' word
                return
            if role != "master":
                await self.disconnect()
                raise RedisConnectionError(
                    f"{self.host}:{self.port}, named primary by the sentinels, is a {role}"
                )


class _SentinelSSLConnection(_SentinelConnection, SSLConnection):
    pass


def is_cluster(redis: Redis) -> bool:
    return isinstance(redis, RedisCluster)  # type: ignore[unreachable,unused-ignore]


def pubsub(redis: Redis) -> PubSub:
    """A pub/sub connection. On a cluster, classic pub/sub reaches every node, so any node will
    do; call again after a connection error to move to another."""
    if not is_cluster(redis):
        return redis.pubsub(ignore_subscribe_messages=True)
    cluster = cast(RedisCluster, redis)
    nodes = cluster.get_nodes() or list(cluster.nodes_manager.startup_nodes.values())
    node = nodes[_next_node(len(nodes))]
    kwargs = cluster.get_connection_kwargs()
    single = Redis(
        host=node.host,
        port=int(node.port),
        username=kwargs.get("username"),
        password=kwargs.get("password"),
        ssl=bool(kwargs.get("ssl")),
        socket_keepalive=True,
        health_check_interval=15,
    )
    return single.pubsub(ignore_subscribe_messages=True)


_rotation = 0


def _next_node(n: int) -> int:
    global _rotation
    _rotation += 1
    return _rotation % n


@dataclass(frozen=True)
class ScriptCall:
    """One EVALSHA of `script`, for `replicated`."""

    script: AsyncScript
    keys: Sequence[str]
    args: Sequence[str | int | float | bytes]


Command = ScriptCall | tuple[Any, ...]


class NotReplicated(Exception):
    """Fewer replicas than asked for acknowledged a write within the timeout."""

    def __init__(self, acked: int, ack: Ack) -> None:
        super().__init__(
            f"{acked} of {ack.replicas} replica(s) acknowledged the write within "
            f"{ack.timeout_ms} ms"
        )
        self.acked = acked


async def replicated(
    redis: Redis, slot_key: str, commands: Sequence[Command], ack: Ack
) -> tuple[list[Any], int]:
    """Runs `commands` (all on `slot_key`'s slot) then, on the same connection, a barrier write
    and `WAIT ack.replicas ack.timeout_ms`: (the commands' replies, replicas that hold them).

    One connection matters: `WAIT` counts replicas that have this connection's last write, and
    a primary that changed between the commands and the `WAIT` would confirm nothing of them.
    If the connection drops, everything runs again on a new one, so the commands must be
    idempotent (relayq's scripts are). With `ack.replicas == 0` the commands just run.
    """
    barrier = barrier_key(slot_key)
    tail: list[tuple[Any, ...]] = (
        [("SET", barrier, "1", "PX", BARRIER_TTL_MS), ("WAIT", ack.replicas, ack.timeout_ms)]
        if ack.required
        else []
    )
    cluster = cast(RedisCluster, redis) if is_cluster(redis) else None
    failure: Exception | None = None
    for _ in range(REPLICATED_ATTEMPTS):
        try:
            if cluster is not None:
                replies = await _on_slot_primary(cluster, barrier, [*commands, *tail])
            else:
                replies = await _on_one_connection(redis, [*commands, *tail])
        except NoScriptError:
            for command in commands:
                if isinstance(command, ScriptCall):
                    command.script.sha = await redis.script_load(command.script.script)
            continue
        except (_SlotMoved, *REDIS_ERRORS) as e:
            if cluster is None:
                raise  # one server or Sentinel: the connection's own retries have run out
            failure = e
            # a keyed command through the cluster client's own retries finds the slot's
            # primary again (after a failover: the promoted replica)
            await redis.get(barrier)
            continue
        return replies[: len(commands)], int(replies[-1]) if ack.required else 0
    raise RedisConnectionError(f"could not reach the primary of {slot_key!r}: {failure}")


REPLICATED_ATTEMPTS = 5


class _SlotMoved(Exception):
    pass


def _args(command: Command) -> tuple[Any, ...]:
    if isinstance(command, ScriptCall):
        return ("EVALSHA", command.script.sha, len(command.keys), *command.keys, *command.args)
    return command


async def _on_one_connection(redis: Redis, commands: Sequence[Command]) -> list[Any]:
    # a pipeline holds one connection; the connection's retry re-runs all of it on a new one
    async with redis.pipeline(transaction=False) as pipe:
        for command in commands:
            pipe.execute_command(*_args(command))
        replies: list[Any] = await pipe.execute(raise_on_error=False)
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


async def _on_slot_primary(
    cluster: RedisCluster, slot_key: str, commands: Sequence[Command]
) -> list[Any]:
    # straight to the node that serves the slot, on one of its connections, in order (the
    # cluster pipeline would re-route a retried WAIT, which names no key, to every node)
    await cluster.initialize()  # the slot map (a no-op once known)
    node = cluster.get_node_from_key(slot_key)
    if node is None:
        raise SlotNotCoveredError(f"no node serves the slot of {slot_key!r}")
    stack = [PipelineCommand(i, *_args(c)) for i, c in enumerate(commands)]
    try:
        await node.execute_pipeline(stack)
    except (RedisConnectionError, RedisTimeoutError, OSError) as e:
        raise RedisConnectionError(f"{node.name}: {e}") from e
    replies = [command.result for command in stack]
    for reply in replies:
        if isinstance(reply, MovedError | AskError | TryAgainError | ClusterDownError):
            raise _SlotMoved(str(reply))
        if isinstance(reply, Exception):
            raise reply
    return replies


class _SeededCluster(RedisCluster):
    """A cluster client that never runs out of nodes to ask for the slot map.

    redis-py before 7.2 drops a node from its startup nodes on each connection error, and when
    commands fail together (as all do in a failover) it can drop them all and never reconnect
    ("Please provide at least one reachable node: None", redis/redis-py#3693, fixed by #3917).
    Before each re-initialisation the URL's seed nodes are put back.
    """

    relayq_seeds: tuple[tuple[str, int], ...] = ()

    async def initialize(self) -> RedisCluster:
        if self._initialize:
            startup = self.nodes_manager.startup_nodes
            for host, port in self.relayq_seeds:
                if f"{host}:{port}" not in startup:
                    startup[f"{host}:{port}"] = ClusterNode(host, port, **self.connection_kwargs)
        return await super().initialize()


def _host_port(text: str, url: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{url!r}: {text!r} is not host:port")
    return host.strip("[]"), int(port)


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    user, sep, password = userinfo.partition(":")
    if not sep:
        return None, unquote(user) or None  # redis://secret@host: a password alone
    return unquote(user) or None, unquote(password) or None


def _db(segments: list[str], url: str) -> int:
    if not segments:
        return 0
    if len(segments) > 1 or not segments[0].isdigit():
        raise ValueError(f"{url!r}: expected /<service>[/<db number>]")
    return int(segments[0])


def _ack(options: dict[str, str], *, default: int) -> Ack:
    try:
        replicas = int(options.get("ack_replicas", default))
        timeout = int(options.get("ack_timeout_ms", DEFAULT_ACK_TIMEOUT_MS))
    except ValueError as e:
        raise ValueError(f"ack_replicas and ack_timeout_ms are whole numbers: {e}") from e
    if replicas < 0 or timeout < 1:
        raise ValueError("ack_replicas must be >= 0 and ack_timeout_ms >= 1")
    return Ack(replicas, timeout)


def _query(options: dict[str, str]) -> str:
    from urllib.parse import urlencode

    return urlencode(options)
