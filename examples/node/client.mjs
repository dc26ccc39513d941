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

export const TERMINAL = new Set(["done", "error", "cancelled"]);
export const QUEUES = { chat: "relayq:queue:chat", computer_use: "relayq:queue:computer" };
export const JOBS_INDEX = "relayq:jobs";
export const DEFAULT_MODEL = "claude-sonnet-4-6";

export const jobKey = (id) => `relayq:{${id}}:job`;
export const eventsKey = (id) => `relayq:{${id}}:events`;
export const newJobId = () => `job_${randomBytes(12).toString("hex")}`;
/** The id a tenant's job has in Redis (CONTRACT.md, HTTP): the gateway shows the tenant `id`. */
export const storedId = (tenant, id) => (tenant ? `${tenant}::${id}` : id);

// ------------------------------------------------------------------ Redis: enqueue with Lua

export class RedisProducer {
  /**
   * @param {import("redis").RedisClientType} redis a connected client
   * @param {{enqueueLua: string, maxlen?: number, arqTtlMs?: number}} options
   *   enqueueLua: the path of enqueue.lua (shipped with relayq: relayq/contract/enqueue.lua)
   */
  constructor(redis, { enqueueLua, maxlen = 100000, arqTtlMs = 24 * 3600 * 1000 }) {
    this.redis = redis;
    this.source = readFileSync(enqueueLua, "utf8");
    this.maxlen = maxlen;
    this.arqTtlMs = arqTtlMs;
    this.sha = null;
  }

  /**
   * Enqueues `job` (the job JSON of CONTRACT.md) for `tenant`; returns {id, storedId, created,
   * status}: `id` as the tenant knows it (the gateway's), `storedId` its id in Redis.
   */
  async enqueue(job, { tenant = "" } = {}) {
    const kind = job.kind ?? "chat";
    const id = job.id ?? newJobId();
    const body = { v: 1, kind, model: DEFAULT_MODEL, ...job, id: storedId(tenant, id) };
    const queue = QUEUES[kind];
    if (!queue) throw new Error(`unknown job kind ${kind}`);
    const keys = [jobKey(body.id), eventsKey(body.id), `arq:job:${body.id}`, queue, JOBS_INDEX];
    const args = [body.id, JSON.stringify(body), kind, kind, body.model, String(this.maxlen),
      String(this.arqTtlMs), tenant];
    if (this.sha === null) this.sha = await this.redis.scriptLoad(this.source);
    let reply;
    try {
      reply = await this.redis.evalSha(this.sha, { keys, arguments: args });
    } catch (e) {
      if (!String(e.message).includes("NOSCRIPT")) throw e;
      reply = await this.redis.eval(this.source, { keys, arguments: args });
    }
    return { id, storedId: body.id, created: Number(reply[0]) === 1, status: String(reply[1]) };
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
      if (!(await redis.exists([eventsKey(jobId), jobKey(jobId)]))) return; // expired or unknown
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
