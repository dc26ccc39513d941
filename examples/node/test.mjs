// End to end from Node.js against a running relayq (Redis, worker, gateway):
//   REDIS_URL=redis://... GATEWAY_URL=http://... API_KEY=... TENANT=... \
//   CONTRACT_DIR=../../relayq/contract node test.mjs
// Enqueues one job through Lua and one through HTTP, reads each through XREAD and through SSE,
// asserts both readings agree, and prints what it saw as one JSON line for the caller to compare.
// REDIS_URL may name a cluster (redis+cluster://h:p,h:p); without GATEWAY_URL only the Lua path
// runs.

import assert from "node:assert/strict";

import {
  GatewayClient, RedisProducer, connectRelayq, storedId, transcript, xreadEvents,
} from "./client.mjs";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`set ${name}`);
  return value;
};

const { redis, ackReplicas, ackTimeoutMs } = connectRelayq(env("REDIS_URL"));
const reader = redis.duplicate(); // XREAD BLOCK gets a connection of its own
await Promise.all([redis.connect(), reader.connect()]);
const gateway = process.env.GATEWAY_URL
  ? new GatewayClient(process.env.GATEWAY_URL, env("API_KEY"))
  : null;
const producer = new RedisProducer(redis, { contractDir: env("CONTRACT_DIR"), ackReplicas, ackTimeoutMs });
const tenant = env("TENANT");

async function collect(iterator) {
  const out = [];
  for await (const item of iterator) out.push(item);
  return out;
}

// `id` as the tenant (and the gateway) knows it; the events in Redis name the stored id
async function readBothWays(id) {
  const [viaXread, viaSse] = await Promise.all([
    collect(xreadEvents(reader, storedId(tenant, id))),
    gateway ? collect(gateway.events(id)) : null,
  ]);
  if (viaSse) {
    assert.deepEqual(viaSse.map((e) => e.id), viaXread.map((e) => e.id), "same stream ids");
    assert.deepEqual(viaSse.map((e) => e.event), viaXread.map((e) => ({ ...e.event, job_id: id })),
      "same events");
  }
  const result = transcript(viaXread.map((e) => e.event));
  assert.equal(result.outcome, "done");
  assert.ok(result.text.length > 0, "the job produced text");
  return { ids: viaXread.map((e) => e.id), events: viaXread.map((e) => e.event), ...result };
}

class Done extends Error {}
const results = [];
try {
  // 1. Lua enqueue, exactly as CONTRACT.md describes it; resubmitting the same id is a no-op
  const luaPrompt = "[[sim:tokens=24 rate=400]] Hello from Node via Lua";
  const lua = await producer.enqueue({ prompt: luaPrompt, max_tokens: 200 }, { tenant });
  assert.equal(lua.created, true);
  const again = await producer.enqueue({ id: lua.id, prompt: luaPrompt, max_tokens: 200 }, { tenant });
  assert.equal(again.created, false);
  results.push({ path: "lua", id: lua.storedId, prompt: luaPrompt, ...(await readBothWays(lua.id)) });

  if (!gateway) throw new Done();
  // 2. HTTP submit with an idempotency key
  const httpPrompt = "[[sim:tokens=24 rate=400]] Hello from Node via HTTP";
  const submitted = await gateway.submit({ kind: "chat", prompt: httpPrompt, system: "Be brief." },
    { idempotencyKey: `node-${lua.id}` });
  assert.equal(submitted.created, true);
  const replayed = await gateway.submit({ kind: "chat", prompt: httpPrompt, system: "Be brief." },
    { idempotencyKey: `node-${lua.id}` });
  assert.equal(replayed.id, submitted.id);
  results.push({ path: "http", id: storedId(tenant, submitted.id), prompt: httpPrompt,
    ...(await readBothWays(submitted.id)) });

  const status = await gateway.status(submitted.id);
  assert.equal(status.status, "done");
} catch (e) {
  if (!(e instanceof Done)) throw e;
} finally {
  await Promise.all([redis.quit(), reader.quit()]);
}
console.log(JSON.stringify({ jobs: results }));
