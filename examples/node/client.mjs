// relayq from Node.js: a producer and a subscriber with nothing but the `redis` package and the
// built-in fetch. Two ways in, two ways out, all described in CONTRACT.md:
//
//   enqueue: EVALSHA of relayq/contract/enqueue.lua (RedisProducer) or POST /v1/jobs (GatewayClient)
//   events:  XREAD BLOCK on the job's stream (xreadEvents) or the gateway's SSE (GatewayClient)
//
// A job's output is the output of the attempt that reaches the terminal event: `transcript()`
// drops what a `retry` event voids, like relayq.Transcript in Python.

import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";

import { createClient, createCluster } from "redis";

export const TERMINAL = new Set(["done", "error", "cancelled"]);
// a queue's keys share the hash tag {<queue>}, a job's keys the hash tag {<job id>} (CONTRACT.md)
export const QUEUES = {
  chat: { waiting: "relayq:queue:{chat}", leases: "relayq:queue:{chat}:leases",
    wake: "relayq:queue:{chat}:wake" },
  computer_use: { waiting: "relayq:queue:{computer}", leases: "relayq:queue:{computer}:leases",
    wake: "relayq:queue:{computer}:wake" },
};
export const JOBS_INDEX = "relayq:jobs";
export const DEFAULT_MODEL = "claude-sonnet-4-6";
export const QUEUED_TTL_S = 24 * 3600;

export const jobKey = (id) => `relayq:{${id}}:job`;
export const eventsKey = (id) => `relayq:{${id}}:events`;
export const envelopeKey = (id) => `relayq:{${id}}:envelope`;
export const barrierKey = (tag) => `relayq:{${tag}}:barrier`;
export const tenantJobsKey = (tenant) => `relayq:tenant:{t:${tenant}}:jobs`;
export const newJobId = () => `job_${randomBytes(12).toString("hex")}`;
/** The id a tenant's job has in Redis (CONTRACT.md, HTTP): the gateway shows the tenant `id`. */
export const storedId = (tenant, id) => (tenant ? `${tenant}::${id}` : id);

// ------------------------------------------------------------------ Redis: connect

/**
 * A node-redis client for a relayq URL: redis://, rediss://, redis+cluster://h:p,h:p,... (a
 * Redis Cluster) or redis+sentinel://h:p,h:p,.../service (a primary found through Sentinel).
 * Query options relayq reads: ack_replicas (default 1 on cluster and sentinel), ack_timeout_ms.
 * Returns {redis, ackReplicas, ackTimeoutMs}; call redis.connect() yourself.
 */
export function connectRelayq(url) {
  const [scheme, rest] = url.split("://");
  const [base, query = ""] = rest.split("?");
  const params = new URLSearchParams(query);
  const tls = scheme.startsWith("rediss");
  const plain = tls ? "rediss" : "redis";
  const replicated = scheme.endsWith("+cluster") || scheme.endsWith("+sentinel");
  const ackReplicas = Number(params.get("ack_replicas") ?? (replicated ? 1 : 0));
  const ackTimeoutMs = Number(params.get("ack_timeout_ms") ?? 1000);
  params.delete("ack_replicas");
  params.delete("ack_timeout_ms");
  const at = base.lastIndexOf("@");
  const auth = at >= 0 ? base.slice(0, at + 1) : "";
  const [hosts, ...path] = (at >= 0 ? base.slice(at + 1) : base).split("/");
  let redis;
  if (scheme.endsWith("+cluster")) {
    redis = createCluster({
      rootNodes: hosts.split(",").map((h) => ({ url: `${plain}://${auth}${h}` })),
    });
  } else if (scheme.endsWith("+sentinel")) {
    throw new Error("redis+sentinel:// : ask your sentinels for the primary " +
      "(SENTINEL GET-MASTER-ADDR-BY-NAME) and connect with redis://");
  } else {
    const q = params.toString();
    redis = createClient({ url: `${scheme}://${base}${q ? `?${q}` : ""}` });
  }
  return { redis, ackReplicas, ackTimeoutMs };
}

const isCluster = (redis) => Array.isArray(redis.masters);

/**
 * Runs `commands` on the primary of `slotKey`'s slot, in one pipeline on one connection,
 * followed (when ackReplicas > 0) by a barrier write and WAIT: returns [replies, replicas that
 * hold them]. One connection matters: WAIT counts replicas of this connection's last write.
 */
export async function replicated(redis, slotKey, commands, { ackReplicas = 0, ackTimeoutMs = 1000 } = {}) {
  const tag = slotKey.slice(slotKey.indexOf("{") + 1, slotKey.indexOf("}"));
  const all = [...commands];
  if (ackReplicas > 0) {
    all.push(["SET", barrierKey(tag), "1", "PX", "60000"], ["WAIT", String(ackReplicas), String(ackTimeoutMs)]);
  }
  const multi = isCluster(redis) ? redis.multi(slotKey) : redis.multi();
  for (const args of all) {
    if (isCluster(redis)) multi.addCommand(slotKey, false, args);
    else multi.addCommand(args);
  }
  const replies = await multi.execAsPipeline();
  return [replies.slice(0, commands.length), ackReplicas > 0 ? Number(replies.at(-1)) : 0];
}

// ------------------------------------------------------------------ Redis: enqueue with Lua

export class NotReplicated extends Error {}

export class RedisProducer {
  /**
   * @param redis a connected node-redis client or cluster (see connectRelayq)
   * @param {{contractDir?: string, enqueueLua?: string, maxlen?: number, ackReplicas?: number,
   *   ackTimeoutMs?: number}} options
   *   contractDir: the folder of enqueue.lua and admit.lua (shipped with relayq:
   *   relayq/contract); enqueueLua, the path of enqueue.lua, also names that folder
   */
  constructor(redis, { contractDir, enqueueLua, maxlen = 100000, ackReplicas = 0, ackTimeoutMs = 1000 }) {
    const dir = contractDir ?? dirname(enqueueLua);
    this.redis = redis;
    this.scripts = {
      enqueue: readFileSync(join(dir, "enqueue.lua"), "utf8"),
      admit: readFileSync(join(dir, "admit.lua"), "utf8"),
    };
    this.maxlen = maxlen;
    this.ack = { ackReplicas, ackTimeoutMs };
  }

  /**
   * Enqueues `job` (the job JSON of CONTRACT.md) for `tenant`; returns {id, storedId, created,
   * status}: `id` as the tenant knows it (the gateway's), `storedId` its id in Redis. Two steps,
   * each idempotent: the job on its slot, then its entry on the queue's slot. Submitting the
   * same id again completes a submission cut short between them and never runs a job twice.
   */
  async enqueue(job, { tenant = "" } = {}) {
    const kind = job.kind ?? "chat";
    const id = job.id ?? newJobId();
    const body = { v: 1, kind, model: DEFAULT_MODEL, ...job, id: storedId(tenant, id) };
    const queue = QUEUES[kind];
    if (!queue) throw new Error(`unknown job kind ${kind}`);
    const [[reply]] = await this.#durably(jobKey(body.id), "enqueue",
      [jobKey(body.id), eventsKey(body.id)],
      [body.id, JSON.stringify(body), kind, body.model, String(this.maxlen), queue.waiting, tenant,
        String(QUEUED_TTL_S)]);
    const status = String(reply[1]);
    if (!TERMINAL.has(status)) {
      await this.#durably(queue.waiting, "admit", [queue.waiting, queue.leases], [body.id, queue.wake]);
      // the recent-jobs indexes (for listings): the shared one and the tenant's, each its own slot
      for (const index of [JOBS_INDEX, tenantJobsKey(tenant)]) {
        await this.redis.zAdd(index, { score: Number(reply[2]), value: body.id }, { NX: true });
      }
    }
    return { id, storedId: body.id, created: Number(reply[0]) === 1, status };
  }

  async #durably(slotKey, script, keys, args) {
    // EVAL sends the source each time: on a cluster, SCRIPT LOAD would have to reach every
    // primary (and again after each failover) for EVALSHA to be safe
    const command = ["EVAL", this.scripts[script], String(keys.length), ...keys, ...args];
    const [replies, acked] = await replicated(this.redis, slotKey, [command], this.ack);
    if (acked < this.ack.ackReplicas) {
      throw new NotReplicated(`${acked} of ${this.ack.ackReplicas} replica(s) confirmed ` +
        `${script} in time; submit the same job again (safe)`);
    }
    return [replies, acked];
  }
}

// ------------------------------------------------------------------ Redis: read with XREAD

/**
 * Yields {id, event} after stream id `after` and ends after the terminal event. Give it a client
 * of its own: XREAD BLOCK holds the connection while it waits.
 */
export async function* xreadEvents(redis, jobId, { after = "0", blockMs = 5000 } = {}) {
  let last = after;
  for (;;) {
    const reply = await redis.xRead({ key: eventsKey(jobId), id: last }, { BLOCK: blockMs, COUNT: 500 });
    if (!reply || reply.length === 0) {
      if (!(await redis.exists([eventsKey(jobId), jobKey(jobId), envelopeKey(jobId)]))) return; // expired or unknown
      continue;
    }
    for (const stream of reply) {
      for (const { id, message } of stream.messages) {
        last = id;
        const event = JSON.parse(message.event);
        yield { id, event };
        if (TERMINAL.has(event.type)) return;
      }
    }
  }
}

// ------------------------------------------------------------------ HTTP gateway

export class GatewayError extends Error {
  constructor(status, problem) {
    super(`${status} ${problem.title ?? ""}: ${problem.detail ?? ""}`);
    this.status = status;
    this.problem = problem;
  }
}

export class GatewayClient {
  constructor(baseUrl, apiKey) {
    this.baseUrl = baseUrl.replace(/\/$/, "");
    this.headers = { Authorization: `Bearer ${apiKey}` };
  }

  async request(method, path, { body, headers = {}, signal } = {}) {
    const init = { method, headers: { ...this.headers, ...headers }, signal };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    const response = await fetch(this.baseUrl + path, init);
    if (!response.ok) {
      let problem = {};
      try { problem = await response.json(); } catch { /* not JSON */ }
      throw new GatewayError(response.status, problem);
    }
    return response;
  }

  /** POST /v1/jobs; returns {id, status, created, links}. */
  async submit(job, { idempotencyKey } = {}) {
    const headers = idempotencyKey ? { "Idempotency-Key": idempotencyKey } : {};
    return (await this.request("POST", "/v1/jobs", { body: job, headers })).json();
  }

  async status(jobId) {
    return (await this.request("GET", `/v1/jobs/${encodeURIComponent(jobId)}`)).json();
  }

  async cancel(jobId) {
    return (await this.request("DELETE", `/v1/jobs/${encodeURIComponent(jobId)}`)).json();
  }

  /**
   * Yields {id, event} from the SSE endpoint after stream id `after`, ending after the terminal
   * event; a dropped connection is resumed with Last-Event-ID (no gap, no duplicate).
   */
  async *events(jobId, { after = "0", retries = 5 } = {}) {
    let last = after;
    let failures = 0;
    for (;;) {
      try {
        const response = await this.request("GET", `/v1/jobs/${encodeURIComponent(jobId)}/events`,
          { headers: { Accept: "text/event-stream", "Last-Event-ID": last } });
        for await (const message of parseSse(response.body)) {
          if (!message.data) continue;
          const event = JSON.parse(message.data);
          last = message.id ?? last;
          failures = 0;
          yield { id: message.id, event };
          if (TERMINAL.has(event.type)) return;
        }
      } catch (e) {
        if (e instanceof GatewayError && e.status < 500) throw e;
        if (++failures > retries) throw e;
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(100 * 2 ** failures, 2000)));
    }
  }
}

/** Server-Sent Events from a fetch() body: yields {id, event, data} per dispatched message. */
export async function* parseSse(body) {
  const decoder = new TextDecoder();
  let buffer = "";
  let message = { id: null, event: "message", data: [] };
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    let nl;
    while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + (buffer.startsWith("\r\n", nl) ? 2 : 1));
      if (line === "") {
        if (message.data.length) {
          yield { id: message.id, event: message.event, data: message.data.join("\n") };
        }
        message = { id: null, event: "message", data: [] };
        continue;
      }
      if (line.startsWith(":")) continue; // a keep-alive comment
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") message.data.push(value);
      else if (field === "id") message.id = value;
      else if (field === "event") message.event = value;
    }
  }
}

// ------------------------------------------------------------------ what a job produced

/** The final attempt's text and tool calls, the outcome and the stop reason. */
export function transcript(events) {
  let attempt = 0;
  let text = "";
  let toolCalls = [];
  let terminal = null;
  for (const event of events) {
    if (TERMINAL.has(event.type)) { terminal = event; continue; }
    if (event.attempt < attempt) continue;
    if (event.attempt > attempt) { attempt = event.attempt; text = ""; toolCalls = []; }
    if (event.type === "retry") { attempt = event.attempt + 1; text = ""; toolCalls = []; }
    else if (event.type === "text") text += event.text;
    else if (event.type === "tool_call") toolCalls.push(event);
  }
  return {
    text, toolCalls, outcome: terminal?.type ?? null,
    stopReason: terminal?.stop_reason ?? null, usage: terminal?.usage ?? null,
  };
}
