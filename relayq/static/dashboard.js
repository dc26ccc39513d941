// relayq dashboard: the jobs list and a live job page over the gateway's JSON and SSE endpoints.
// The API key is kept in localStorage and sent as a Bearer header; the event stream is read with
// fetch() (so that header can be sent) and parsed here. Everything a job produced is untrusted:
// it only ever reaches the page through textContent and attributes, never as HTML.
"use strict";

(() => {
  const KEY = "relayq.apiKey";
  const TERMINAL = new Set(["done", "error", "cancelled"]);
  const $ = (id) => document.getElementById(id);
  const page = document.body.dataset.page;
  const jobId = document.body.dataset.jobId;

  class AuthError extends Error {}

  const apiKey = () => localStorage.getItem(KEY) || "";

  async function api(path, options = {}) {
    const headers = { ...(options.headers || {}), Authorization: `Bearer ${apiKey()}` };
    const response = await fetch(path, { ...options, headers });
    if (response.status === 401) {
      askForKey("The gateway refused that key. Enter another one.");
      throw new AuthError("unauthorized");
    }
    return response;
  }

  async function problemText(response) {
    try {
      const body = await response.json();
      return body.detail || body.title || `HTTP ${response.status}`;
    } catch {
      return `HTTP ${response.status}`;
    }
  }

  // ------------------------------------------------------------------ key handling

  let started = false;

  function askForKey(message) {
    $("key-panel").hidden = false;
    $("jobs-page").hidden = true;
    $("job-page").hidden = true;
    $("key-error").textContent = message || "";
    $("forget-key").hidden = true;
    $("key-label").textContent = "";
    $("key-input").focus();
  }

  let identity = null;

  function showPage() {
    $("key-panel").hidden = true;
    $("forget-key").hidden = false;
    $("key-label").textContent = "Key set";
    $(page === "job" ? "job-page" : "jobs-page").hidden = false;
    if (!started) {
      started = true;
      loadIdentity().catch(() => {});
      if (page === "job") startJobPage();
      else startJobsPage();
    }
  }

  async function loadIdentity() {
    const response = await api("/v1/me");
    if (!response.ok) return;
    identity = await response.json();
    $("key-label").textContent = `Tenant ${identity.tenant}` +
      (identity.local ? " (with the CLI and Python jobs)" : "");
  }

  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const value = $("key-input").value.trim();
    if (!value) return;
    localStorage.setItem(KEY, value);
    $("key-input").value = "";
    if (started) location.reload();
    else showPage();
  });

  $("forget-key").addEventListener("click", () => {
    localStorage.removeItem(KEY);
    location.reload();
  });

  // ------------------------------------------------------------------ formatting

  const fmtInt = (n) => (n || 0).toLocaleString("en-US");
  const fmtCost = (usd) => `$${(usd || 0).toFixed(usd >= 1 ? 2 : 4)}`;
  const fmtTime = (ms) => (ms ? new Date(ms).toLocaleString() : "—");
  const fmtClock = (ms) => (ms ? new Date(ms).toLocaleTimeString() : "—");

  function fmtDuration(ms) {
    if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
    if (ms < 1000) return `${Math.round(ms)} ms`;
    const s = ms / 1000;
    if (s < 60) return `${s.toFixed(1)} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} m ${String(Math.floor(s % 60)).padStart(2, "0")} s`;
    return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} m`;
  }

  const kindLabel = (kind) => (kind === "computer_use" ? "computer use" : kind);

  // running jobs have lasted until now; finished ones from their start to their end
  function durationOf(job) {
    if (job.run_ms !== null && job.run_ms !== undefined) return job.run_ms;
    if (job.started_ms && !job.finished_ms) return Date.now() - job.started_ms;
    return null;
  }

  function costOf(pricing, usage) {
    if (!pricing || !usage) return 0;
    const uncached = Math.max(
      usage.prompt_tokens - usage.cache_creation_tokens - usage.cache_read_tokens, 0);
    return (uncached * pricing.input + usage.completion_tokens * pricing.output +
      usage.cache_creation_tokens * pricing.cache_write +
      usage.cache_read_tokens * pricing.cache_read) / 1e6;
  }

  function setStatus(element, status) {
    element.textContent = status;
    element.className = `status status-${status}`;
  }

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (k === "text") node.textContent = v;
      else if (k === "className") node.className = v;
      else node.setAttribute(k, v);
    }
    for (const child of children) node.append(child);
    return node;
  }

  // ------------------------------------------------------------------ jobs list

  let olderCursor = null;
  const COLUMNS = ["Job", "Kind", "Status", "Model", "Attempt", "Tokens", "Cost (est.)",
    "Created", "Duration"];

  function cell(n, props, ...children) {
    return el("td", { ...props, "data-label": COLUMNS[n] }, ...children);
  }

  function jobRow(job) {
    const usage = job.usage || { prompt_tokens: 0, completion_tokens: 0 };
    const status = el("span", { text: job.status });
    setStatus(status, job.status);
    const link = el("a", { href: job.links.dashboard }, el("code", { text: job.id }));
    const first = el("div", { className: "job-cell" }, link);
    if (job.summary) first.append(el("span", { className: "summary", text: job.summary, title: job.summary }));
    return el("tr", { "data-job-id": job.id },
      cell(0, {}, first),
      cell(1, { text: kindLabel(job.kind) }),
      cell(2, {}, status),
      cell(3, { text: job.model }),
      cell(4, { className: "num", text: String(job.attempt) }),
      cell(5, { className: "num", text: fmtInt(usage.prompt_tokens + usage.completion_tokens) }),
      cell(6, { className: "num", text: fmtCost(job.cost_usd) }),
      cell(7, { text: fmtTime(job.created_ms) }),
      cell(8, { className: "num", text: fmtDuration(durationOf(job)) }));
  }

  function filterQuery() {
    const params = new URLSearchParams({ limit: "50" });
    for (const name of ["q", "status", "kind"]) {
      const value = $(`filter-${name}`).value.trim();
      if (value) params.set(name, value);
    }
    return params;
  }

  function filtering() {
    return ["q", "status", "kind"].some((name) => $(`filter-${name}`).value.trim());
  }

  function emptyText() {
    if (filtering()) return "No job matches these filters.";
    const local = identity && identity.local_tenant;
    if (identity && identity.local) {
      return "No jobs yet. Jobs submitted with the CLI or the Python client show here too.";
    }
    return "No jobs yet. Jobs submitted with this tenant's key show here. Jobs submitted with " +
      "the CLI or the Python client have no tenant: they show to the key of the tenant " +
      (local ? `“${local}”.` : "set as RELAYQ_GATEWAY_LOCAL_TENANT (none is set).");
  }

  async function loadJobs() {
    const response = await api(`/v1/jobs?${filterQuery()}`);
    if (!response.ok) throw new Error(await problemText(response));
    const body = await response.json();
    $("jobs-body").replaceChildren(...body.jobs.map(jobRow));
    $("jobs-empty").hidden = body.jobs.length > 0;
    $("jobs-empty").textContent = body.jobs.length ? "" : emptyText();
    olderCursor = body.next_cursor;
    $("more-jobs").hidden = !olderCursor;
    $("jobs-updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
  }

  async function loadOlder() {
    if (!olderCursor) return;
    const params = filterQuery();
    params.set("cursor", olderCursor);
    const response = await api(`/v1/jobs?${params}`);
    if (!response.ok) return;
    const body = await response.json();
    $("jobs-body").append(...body.jobs.map(jobRow));
    olderCursor = body.next_cursor;
    $("more-jobs").hidden = !olderCursor;
  }

  async function loadFleet() {
    const response = await api("/v1/fleet");
    if (!response.ok) return;
    const fleet = await response.json();
    $("fleet-warnings").replaceChildren(...fleet.warnings.map((w) => el("li", { text: w })));
    const qcols = ["Queue", "Waiting", "Running", "Oldest wait", "Workers"];
    $("queues-body").replaceChildren(...fleet.queues.map((q) => el("tr", { "data-queue": q.name },
      el("td", { "data-label": qcols[0], text: q.name }),
      el("td", { "data-label": qcols[1], className: "num", text: fmtInt(q.waiting) }),
      el("td", { "data-label": qcols[2], className: "num", text: fmtInt(q.running) }),
      el("td", { "data-label": qcols[3], className: "num",
        text: q.waiting ? fmtDuration(q.oldest_wait_s * 1000) : "—" }),
      el("td", { "data-label": qcols[4], className: "num", text: String(q.workers) }))));
    const wcols = ["Worker", "Queues", "Running", "Your jobs", "Last seen"];
    const workers = fleet.workers.map((w) => {
      const yours = el("td", { "data-label": wcols[3] });
      if (!w.yours.length) yours.textContent = "—";
      w.yours.forEach((id, n) => {
        if (n) yours.append(" ");
        yours.append(el("a", { href: `/jobs/${encodeURIComponent(id)}` }, el("code", { text: id })));
      });
      return el("tr", { "data-worker": w.id },
        el("td", { "data-label": wcols[0] }, el("code", { text: w.id })),
        el("td", { "data-label": wcols[1], text: w.queues.join(", ") }),
        el("td", { "data-label": wcols[2], className: "num", text: String(w.running) }),
        yours,
        el("td", { "data-label": wcols[4], className: "num", text: `${w.seen_s.toFixed(1)} s ago` }));
    });
    if (!workers.length) {
      workers.push(el("tr", {}, el("td", { colspan: "5", text: "No live worker." })));
    }
    $("workers-body").replaceChildren(...workers);
  }

  function startJobsPage() {
    $("more-jobs").addEventListener("click", () => loadOlder().catch(() => {}));
    let timer = null;
    let typing = null;
    const tick = async () => {
      clearTimeout(timer);
      try {
        await Promise.all([loadJobs(), loadFleet()]);
      } catch (e) {
        if (e instanceof AuthError) return;
        $("jobs-updated").textContent = `Could not load jobs: ${e.message}`;
      }
      // the first page refreshes itself while it is the only one shown
      if (!$("more-jobs").dataset.paged) timer = setTimeout(tick, 2000);
    };
    $("more-jobs").addEventListener("click", () => { $("more-jobs").dataset.paged = "1"; });
    const refilter = () => { delete $("more-jobs").dataset.paged; tick(); };
    $("filters").addEventListener("submit", (e) => { e.preventDefault(); refilter(); });
    $("filter-status").addEventListener("change", refilter);
    $("filter-kind").addEventListener("change", refilter);
    $("filter-q").addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(refilter, 250);
    });
    tick();
  }

  // ------------------------------------------------------------------ SSE over fetch

  async function* serverSentEvents(response, signal) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let event = { id: null, type: "message", data: [] };
    signal.addEventListener("abort", () => reader.cancel().catch(() => {}));
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + (buffer.startsWith("\r\n", nl) ? 2 : 1));
        if (line === "") {
          if (event.data.length) yield { id: event.id, type: event.type, data: event.data.join("\n") };
          event = { id: null, type: "message", data: [] };
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "data") event.data.push(val);
        else if (field === "id") event.id = val;
        else if (field === "event") event.type = val;
      }
    }
  }

  // Follows the job's events from the start, resuming from the last id after a disconnect.
  async function followEvents(id, onEvent, signal) {
    let last = "0";
    let failures = 0;
    while (!signal.aborted) {
      try {
        const response = await api(`/v1/jobs/${encodeURIComponent(id)}/events?after=${last}`,
          { signal, headers: { Accept: "text/event-stream" } });
        if (!response.ok) throw new Error(await problemText(response));
        failures = 0;
        for await (const message of serverSentEvents(response, signal)) {
          if (message.id) last = message.id;
          const event = JSON.parse(message.data);
          onEvent(event);
          if (TERMINAL.has(event.type)) return;
        }
      } catch (e) {
        if (signal.aborted || e instanceof AuthError) return;
        failures += 1;
        if (failures > 3) $("job-error").textContent = `Reconnecting to the event stream: ${e.message}`;
      }
      await new Promise((r) => setTimeout(r, Math.min(500 * 2 ** failures, 5000)));
    }
  }

  // ------------------------------------------------------------------ the job page

  const job = {
    info: null, attempt: 0, text: "", tools: [], usage: null, actions: new Map(),
    shots: [], pinned: null, terminal: null, afterAction: false,
  };

  function emptyUsage() {
    return { prompt_tokens: 0, completion_tokens: 0, cache_creation_tokens: 0,
      cache_read_tokens: 0, total_tokens: 0 };
  }

  function startAttempt(attempt) {
    job.attempt = attempt;
    job.text = "";
    job.afterAction = false;
    job.tools = [];
    job.usage = emptyUsage();
    job.actions = new Map();
    job.shots = [];
    job.pinned = null;
    $("filmstrip").replaceChildren();
    renderScreen();
  }

  function renderFacts() {
    const info = job.info;
    if (info) {
      $("job-kind").textContent = kindLabel(info.kind);
      $("job-model").textContent = info.model;
      $("job-created").textContent = fmtTime(info.created_ms);
      $("job-wait").textContent = fmtDuration(info.queue_wait_ms ??
        (info.started_ms ? null : Date.now() - info.created_ms));
      $("job-started").textContent = fmtClock(info.started_ms);
      $("job-finished").textContent = fmtClock(info.finished_ms);
      $("job-duration").textContent = fmtDuration(durationOf(info));
    }
    $("job-attempt").textContent = String(job.attempt || (info ? info.attempt : 0));
    const usage = job.usage && job.usage.total_tokens ? job.usage : (info && info.usage) || null;
    if (usage) {
      $("job-tokens").textContent = `${fmtInt(usage.prompt_tokens)} / ${fmtInt(usage.completion_tokens)}`;
      $("job-cost").textContent = fmtCost(costOf(info && info.pricing, usage));
    } else {
      $("job-tokens").textContent = "0 / 0";
      $("job-cost").textContent = fmtCost(0);
    }
  }

  function renderText() {
    const pre = $("job-text");
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.textContent = job.text;
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }

  function renderTools() {
    $("tools").hidden = job.tools.length === 0;
    $("tool-calls").replaceChildren(...job.tools.map((call) =>
      el("li", {}, el("strong", { text: call.name }), " ",
        el("code", { text: call.call_id }), el("pre", { text: call.arguments }))));
  }

  function describeAction(action) {
    if (!action) return "";
    const input = action.input || {};
    const parts = [`Step ${action.step}: ${action.action}`];
    if (Array.isArray(input.coordinate)) parts.push(`at (${input.coordinate.join(", ")})`);
    if (typeof input.text === "string") parts.push(`“${input.text}”`);
    if (input.scroll_direction) parts.push(`${input.scroll_direction} ×${input.scroll_amount || 1}`);
    return parts.join(" ");
  }

  function renderScreen() {
    const shots = job.shots;
    const shot = job.pinned !== null ? shots.find((s) => s.step === job.pinned) : shots[shots.length - 1];
    const img = $("screen-img");
    const marker = $("screen-marker");
    $("follow-live").hidden = job.pinned === null;
    if (!shot || !shot.url) {
      img.removeAttribute("src");
      img.alt = "No screenshot yet";
      marker.hidden = true;
      $("screen-caption").textContent = "";
      return;
    }
    img.src = shot.url;
    const action = job.actions.get(shot.step);
    img.alt = shot.step === 0 ? "The start page" : `The screen after ${describeAction(action) || `step ${shot.step}`}`;
    const coordinate = action && action.input && action.input.coordinate;
    if (Array.isArray(coordinate) && shot.width && shot.height) {
      marker.style.left = `${(100 * coordinate[0]) / shot.width}%`;
      marker.style.top = `${(100 * coordinate[1]) / shot.height}%`;
      marker.hidden = false;
    } else {
      marker.hidden = true;
    }
    const where = shot.url_text ? ` — ${shot.url_text}` : "";
    $("screen-caption").textContent =
      (shot.step === 0 ? "Start" : describeAction(action) || `Step ${shot.step}`) + where;
    for (const button of $("filmstrip").querySelectorAll("button")) {
      button.setAttribute("aria-current", String(Number(button.dataset.step) === shot.step));
    }
  }

  async function addScreenshot(event) {
    const shot = { step: event.step, blob: event.blob, width: event.width, height: event.height,
      url: null, url_text: event.url || "", attempt: event.attempt };
    job.shots.push(shot);
    job.shots.sort((a, b) => a.step - b.step);
    $("screen-panel").hidden = false;
    document.querySelector(".job-grid").classList.add("with-screen");
    const thumb = el("img", { alt: "" });
    const label = el("span", { text: shot.step === 0 ? "Start" : `Step ${shot.step}` });
    const button = el("button", { type: "button", "data-step": String(shot.step),
      "aria-label": shot.step === 0 ? "Show the start screen" : `Show step ${shot.step}` }, thumb, label);
    button.addEventListener("click", () => { job.pinned = shot.step; renderScreen(); });
    const item = el("li", {}, button);
    item.dataset.step = String(shot.step);
    const after = [...$("filmstrip").children].find((li) => Number(li.dataset.step) > shot.step);
    $("filmstrip").insertBefore(item, after || null);
    if (job.pinned === null) $("filmstrip").scrollLeft = $("filmstrip").scrollWidth;
    updateStripButtons();
    try {
      const response = await api(`/v1/jobs/${encodeURIComponent(jobId)}/screenshots/${shot.blob}`);
      if (!response.ok) throw new Error(await problemText(response));
      shot.url = URL.createObjectURL(await response.blob());
      thumb.src = shot.url;
      const action = job.actions.get(shot.step);
      label.textContent = shot.step === 0 ? "Start" : `${shot.step}: ${action ? action.action : "step"}`;
      label.title = describeAction(action);
    } catch (e) {
      if (!(e instanceof AuthError)) label.textContent = `Step ${shot.step}: image gone`;
    }
    renderScreen();
  }

  // ------------------------------------------------------------------ timeline

  const timeline = { t0: null, last: null };

  function describeEvent(event) {
    switch (event.type) {
      case "queued": return `${kindLabel(event.kind || "")} job queued`;
      case "started": return `attempt ${event.attempt} started` + (event.worker ? ` on ${event.worker}` : "");
      case "text": return "text";
      case "thinking": return "thinking";
      case "tool_call": return `tool call ${event.name}`;
      case "usage": return `usage: ${fmtInt(event.prompt_tokens)} in / ${fmtInt(event.completion_tokens)} out`;
      case "action": return describeAction(event);
      case "screenshot": return event.step === 0 ? "screenshot of the start page" : `screenshot after step ${event.step}`;
      case "retry": return `attempt ${event.attempt} failed (${event.error ? event.error.type : event.reason}); retry in ${(event.delay || 0).toFixed(1)} s`;
      case "done": return `done (${event.stop_reason || "end"})`;
      case "error": return `error: ${event.error.type}: ${event.error.message}`;
      case "cancelled": return `cancelled: ${event.reason || ""}`;
      default: return event.type;
    }
  }

  // one row per event; consecutive text (or thinking) deltas of an attempt share a row
  function addToTimeline(event) {
    const ts = typeof event.ts === "number" ? event.ts : null;
    if (timeline.t0 === null && ts !== null) timeline.t0 = ts;
    const offset = ts !== null && timeline.t0 !== null ? `+${fmtDuration((ts - timeline.t0) * 1000)}` : "";
    const chunked = event.type === "text" || event.type === "thinking";
    const last = timeline.last;
    if (chunked && last && last.type === event.type && last.attempt === event.attempt) {
      last.count += 1;
      last.chars += (event.text || "").length;
      last.detail.textContent = `${event.type}: ${last.count} deltas, ${fmtInt(last.chars)} characters`;
      return;
    }
    const detail = el("span", { className: "detail", text: chunked
      ? `${event.type}: 1 delta, ${fmtInt((event.text || "").length)} characters` : describeEvent(event) });
    const kind = el("span", { className: `status status-${event.type}`, text: event.type });
    const row = el("li", { "data-type": event.type },
      el("span", { className: "when", text: offset }), kind,
      el("span", { className: "attempt", text: event.attempt ? `#${event.attempt}` : "" }), detail);
    $("timeline").append(row);
    timeline.last = { type: event.type, attempt: event.attempt, count: 1,
      chars: (event.text || "").length, detail };
  }

  // ------------------------------------------------------------------ request and re-run

  async function loadRequest() {
    const response = await api(`/v1/jobs/${encodeURIComponent(jobId)}/request`);
    if (!response.ok) {
      $("request-meta").textContent = `The request is not available: ${await problemText(response)}`;
      return;
    }
    const request = await response.json();
    const computer = request.kind === "computer_use";
    let prompt = computer ? request.task : request.prompt;
    if (!computer && prompt === null && request.messages) {
      const items = (request.messages.items || []).filter((i) => i.role === "user");
      const lastUser = items[items.length - 1];
      const content = lastUser ? lastUser.content : [];
      prompt = (Array.isArray(content) ? content : [content])
        .map((c) => (typeof c === "string" ? c : c.text || "")).join("\n");
    }
    $("job-prompt").textContent = prompt || "";
    const meta = [computer ? "Task" : "Prompt"];
    if (computer) meta.push(`start URL ${request.start_url}`, `${request.display_width}×${request.display_height}`, `at most ${request.max_steps} steps`);
    else meta.push(`max ${fmtInt(request.max_tokens)} tokens`);
    if (request.system) meta.push("with a system prompt");
    $("request-meta").textContent = meta.join(" · ");
    $("request-json").textContent = JSON.stringify(request, null, 2);
    $("rerun-job").disabled = false;
  }

  async function rerunJob() {
    const button = $("rerun-job");
    button.disabled = true;
    try {
      const response = await api(`/v1/jobs/${encodeURIComponent(jobId)}/rerun`, { method: "POST" });
      if (!response.ok) throw new Error(await problemText(response));
      const body = await response.json();
      location.assign(body.links.dashboard);
    } catch (e) {
      if (!(e instanceof AuthError)) $("job-error").textContent = `Could not run it again: ${e.message}`;
      button.disabled = false;
    }
  }

  // ------------------------------------------------------------------ film strip scrolling

  function updateStripButtons() {
    const strip = $("filmstrip");
    const overflowing = strip.scrollWidth > strip.clientWidth + 1;
    $("strip-left").hidden = !overflowing;
    $("strip-right").hidden = !overflowing;
    $("strip-left").disabled = strip.scrollLeft <= 0;
    $("strip-right").disabled = strip.scrollLeft + strip.clientWidth >= strip.scrollWidth - 1;
    $("steps-count").textContent = strip.children.length ?
      `${strip.children.length} screens` + (overflowing ? " · scroll for more" : "") : "";
  }

  function scrollStrip(direction) {
    const strip = $("filmstrip");
    strip.scrollBy({ left: direction * strip.clientWidth * 0.8, behavior: "smooth" });
  }

  function note(text) {
    $("job-notes").append(el("li", { text }));
  }

  function onEvent(event) {
    addToTimeline(event);
    if (event.attempt > job.attempt && !TERMINAL.has(event.type)) startAttempt(event.attempt);
    const stale = event.attempt < job.attempt && !TERMINAL.has(event.type);
    if (stale) return;
    switch (event.type) {
      case "queued":
        setStatus($("job-status"), "queued");
        break;
      case "started":
        setStatus($("job-status"), "running");
        break;
      case "text":
        // a computer-use job's turns are separated by actions: one line per turn
        if (job.afterAction && job.text && !job.text.endsWith("\n")) job.text += "\n";
        job.afterAction = false;
        job.text += event.text;
        renderText();
        break;
      case "tool_call":
        job.tools.push(event);
        renderTools();
        break;
      case "usage":
        for (const k of Object.keys(job.usage)) job.usage[k] += event[k] || 0;
        break;
      case "action":
        job.afterAction = true;
        job.actions.set(event.step, event);
        renderScreen();
        break;
      case "screenshot":
        addScreenshot(event);
        break;
      case "retry": {
        const why = event.error ? `${event.error.type}: ${event.error.message}` : event.reason;
        note(`Attempt ${event.attempt} failed (${why}); retrying in ${event.delay.toFixed(1)} s. Its output was discarded.`);
        setStatus($("job-status"), "retrying");
        startAttempt(event.attempt + 1);
        renderText();
        renderTools();
        break;
      }
      case "done":
        job.usage = { ...event.usage };
        break;
      case "error":
        $("job-error").textContent = `${event.error.type}: ${event.error.message}`;
        break;
      case "cancelled":
        note(`Cancelled: ${event.reason}`);
        break;
      default:
        break;
    }
    if (TERMINAL.has(event.type)) {
      job.terminal = event;
      setStatus($("job-status"), event.type);
      $("cancel-job").disabled = true;
      refreshInfo();
    }
    renderFacts();
  }

  async function refreshInfo() {
    const response = await api(`/v1/jobs/${encodeURIComponent(jobId)}`);
    if (response.status === 404) {
      $("job-error").textContent = "No such job: unknown, expired, or another tenant's.";
      setStatus($("job-status"), "unknown");
      return false;
    }
    if (!response.ok) throw new Error(await problemText(response));
    job.info = await response.json();
    if (!job.terminal) {
      setStatus($("job-status"), job.info.status);
      $("cancel-job").disabled = TERMINAL.has(job.info.status);
    }
    renderFacts();
    return true;
  }

  async function cancelJob() {
    const button = $("cancel-job");
    button.disabled = true;
    try {
      const response = await api(`/v1/jobs/${encodeURIComponent(jobId)}`, { method: "DELETE" });
      if (!response.ok) throw new Error(await problemText(response));
      const body = await response.json();
      if (body.outcome === "signalled") note("Cancel requested; waiting for the worker to stop.");
    } catch (e) {
      if (!(e instanceof AuthError)) $("job-error").textContent = `Cancel failed: ${e.message}`;
      button.disabled = Boolean(job.terminal);
    }
  }

  async function startJobPage() {
    $("cancel-job").addEventListener("click", cancelJob);
    $("rerun-job").addEventListener("click", rerunJob);
    $("strip-left").addEventListener("click", () => scrollStrip(-1));
    $("strip-right").addEventListener("click", () => scrollStrip(1));
    $("filmstrip").addEventListener("scroll", updateStripButtons, { passive: true });
    window.addEventListener("resize", updateStripButtons);
    $("follow-live").addEventListener("click", () => { job.pinned = null; renderScreen(); });
    job.usage = emptyUsage();
    try {
      if (!(await refreshInfo())) return;
    } catch (e) {
      if (!(e instanceof AuthError)) $("job-error").textContent = `Could not load the job: ${e.message}`;
      return;
    }
    loadRequest().catch(() => {});
    const controller = new AbortController();
    window.addEventListener("pagehide", () => controller.abort());
    // durations of a running job grow: refresh the facts while it runs
    const clock = setInterval(() => { if (job.terminal) clearInterval(clock); else renderFacts(); }, 1000);
    followEvents(jobId, onEvent, controller.signal);
  }

  // ------------------------------------------------------------------ start

  if (apiKey()) showPage();
  else askForKey();
})();
