// jobledger dashboard: reads the JSON API of the app that served it; writes nothing.
// Every value from the ledger goes into the page as text (textContent), never as HTML.
"use strict";

const POLL_MS = Number(document.body.dataset.pollMs) || 1000;
const STATES = ["ALL", "PENDING_AND_RUNNING", "COMPLETED", "FAILED", "TIMEOUT", "CANCELLED",
  "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE", "LOST"];
const view = { tag: document.body.dataset.tag || null, state: "ALL", sort: "job_id", desc: false, offset: 0, limit: 25,
  job: null, lastEvent: undefined, trendKey: "", trendAgg: "last" };
const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

async function api(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function showError(err) {
  const box = $("error");
  box.hidden = !err;
  box.textContent = err ? String(err.message || err) : "";
}

const enc = encodeURIComponent;
const tagPath = () => `/api/tags/${enc(view.tag)}`;

function fmtSeconds(s) {
  if (s === undefined || s === null || s === "") return "";
  const n = Number(s);
  if (!isFinite(n)) return String(s);
  if (n < 60) return `${n.toFixed(1)} s`;
  const h = Math.floor(n / 3600), m = Math.floor((n % 3600) / 60), sec = Math.round(n % 60);
  return `${h}:${String(m).padStart(2, "0")}:${String(sec).padStart(2, "0")}`;
}
function fmtBytes(b) {
  if (b === undefined || b === null || b === "") return "";
  let n = Number(b);
  for (const unit of ["B", "KiB", "MiB", "GiB", "TiB"]) {
    if (n < 1024 || unit === "TiB") return unit === "B" ? `${n} B` : `${n.toFixed(1)} ${unit}`;
    n /= 1024;
  }
  return String(b);
}
const fmtPct = (f) => (f === undefined || f === null || f === "" ? "" : `${(100 * Number(f)).toFixed(0)}%`);

function saveHash() {
  const params = new URLSearchParams();
  if (view.tag) params.set("tag", view.tag);
  if (view.state !== "ALL") params.set("state", view.state);
  if (view.sort !== "job_id") params.set("sort", view.sort);
  if (view.desc) params.set("desc", "1");
  if (view.offset) params.set("offset", String(view.offset));
  if (view.job) params.set("job", view.job);
  // The path alone: a ?token= the page was opened with is now in a cookie, and must not
  // stay in the address bar, the history, or a link copied from it.
  history.replaceState(null, "", `${location.pathname}#${params}`);
}

function loadHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  view.tag = params.get("tag") || view.tag;
  view.state = params.get("state") || "ALL";
  view.sort = params.get("sort") || "job_id";
  view.desc = params.get("desc") === "1";
  view.offset = Number(params.get("offset")) || 0;
  view.job = params.get("job");
}

// --- tags and the overview -----------------------------------------------------------

async function loadTags() {
  const data = await api("/api/tags");
  const select = $("tag");
  select.replaceChildren();
  const names = Object.keys(data.tags);
  for (const name of names) {
    const option = el("option", `${name} (${data.tags[name].ALL})`);
    option.value = name;
    select.append(option);
  }
  if (!names.length) {
    showError("no tags on this server yet (jobledger launch --tag NAME script.sh)");
    return false;
  }
  if (!view.tag || !names.includes(view.tag)) view.tag = names[0];
  select.value = view.tag;
  return true;
}

const SEED_SETS = ["ALL", "PENDING_AND_RUNNING", "COMPLETED", "FAILED", "TIMEOUT", "CANCELLED"];

function renderOverview(data) {
  // The count buttons are made once and updated in place, so a click never meets a
  // button that a refresh replaced.
  const counts = $("counts");
  for (const name of STATES) {
    const n = data.counts[name] || 0;
    let button = $(`count-${name}`);
    if (!button) {
      button = el("button", null, `count s-${name}`);
      button.type = "button";
      button.id = `count-${name}`;
      button.append(el("b"), el("span", name === "PENDING_AND_RUNNING" ? "PENDING/RUNNING" : name));
      button.addEventListener("click", () => setState(name));
      counts.append(button);
    }
    button.firstChild.textContent = String(n);
    button.hidden = !n && !SEED_SETS.includes(name);
    button.classList.toggle("active", view.state === name);
  }
  const t = data.tracker || {};
  $("tracker").textContent = t.last_pass_at
    ? `tracker: ${t.mode || "ok"}, last pass ${t.last_pass_at}` +
      (t.degraded_reason ? ` (${t.degraded_reason})` : "")
    : "tracker: none has run for this tag (jobledger track)";
  const stalled = $("stalled");
  stalled.hidden = !data.stalled;
  stalled.textContent = data.stalled
    ? `stalled: ${data.stalled} running job(s) stopped heartbeating: ${data.stalled_ids.join(" ")}`
    : "";
  const events = $("events").tBodies[0];
  events.replaceChildren();
  for (const e of [...data.events].reverse()) {
    const row = el("tr");
    row.append(el("td", e.at), el("td", e.job), el("td", e.event ||
      `${e.from || "(new)"} \u2192 ${e.to}`), el("td", e.by));
    events.append(row);
  }
  const top = $("top").tBodies[0];
  top.replaceChildren();
  for (const entry of data.top) {
    const row = el("tr");
    row.append(el("td", entry.job_id), el("td", entry.key), el("td", entry.value));
    top.append(row);
  }
  $("live").textContent = `live, updated ${new Date().toLocaleTimeString()}`;
}

// --- the job table -------------------------------------------------------------------

function setState(name) {
  view.state = name;
  view.offset = 0;
  $("state-filter").value = name;
  refresh(true);
}

async function loadJobs() {
  const q = new URLSearchParams({ state: view.state, sort: view.sort, offset: view.offset,
    limit: view.limit });
  if (view.desc) q.set("desc", "1");
  const page = await api(`${tagPath()}/jobs?${q}`);
  const body = $("jobs").tBodies[0];
  const before = new Map([...body.rows].map((r) => [r.dataset.job, r.dataset.state]));
  body.replaceChildren();
  for (const job of page.jobs) {
    const row = el("tr", null, "job");
    row.dataset.job = job.job_id;
    row.dataset.state = job.state || "";
    if (before.has(job.job_id) && before.get(job.job_id) !== row.dataset.state) {
      row.classList.add("changed");
    }
    row.append(
      el("td", job.job_id), el("td", job.state, `s-${job.state}`), el("td", job.submitted_at),
      el("td", job.ended_at), el("td", fmtSeconds(job.elapsed_s)), el("td", job.exit_code),
      el("td", job.attempts), el("td", fmtBytes(job.max_rss_bytes)),
      el("td", fmtPct(job.cpu_efficiency)), el("td", job.reason));
    row.addEventListener("click", () => openJob(job.job_id));
    body.append(row);
  }
  const last = Math.min(page.offset + page.jobs.length, page.total);
  $("page-info").textContent = page.total
    ? `${page.offset + 1}\u2013${last} of ${page.total}` : "no jobs";
  $("prev").disabled = page.offset === 0;
  $("next").disabled = last >= page.total;
  $("filter-name").textContent = view.state === "ALL" ? "(all)" : `(${view.state})`;
  for (const th of $("jobs").tHead.rows[0].cells) {
    th.classList.toggle("sorted", th.dataset.sort === view.sort);
    th.classList.toggle("desc", th.dataset.sort === view.sort && view.desc);
  }
}

// --- one job ---------------------------------------------------------------------------

function fillKv(table, entries) {
  table.replaceChildren();
  for (const [k, v] of entries) {
    const row = el("tr");
    row.append(el("td", k), el("td", v));
    table.append(row);
  }
  if (!entries.length) table.append(el("tr", "none"));
}

async function openJob(jobId) {
  view.job = jobId;
  saveHash();
  await loadJob();
  $("job-panel").scrollIntoView({ block: "nearest" });
}

async function loadJob() {
  if (!view.job) {
    $("job-panel").hidden = true;
    return;
  }
  const base = `${tagPath()}/jobs/${enc(view.job)}`;
  const [job, out, err] = await Promise.all([
    api(base), api(`${base}/logs?stream=stdout&lines=50`), api(`${base}/logs?stream=stderr&lines=50`),
  ]);
  $("job-panel").hidden = false;
  $("job-id").textContent = job.job_id;
  $("job-state").textContent = job.states.join(", ") || "no state set";
  $("job-state").className = `badge s-${job.states[0] || ""}`;
  fillKv($("job-record"), Object.entries(job.record).sort());
  const u = job.usage || {};
  fillKv($("job-usage"), job.usage ? [
    ["elapsed", fmtSeconds(u.elapsed_s)], ["CPU time", fmtSeconds(u.cpu_s)],
    ["max RSS", fmtBytes(u.max_rss_bytes)], ["requested memory", fmtBytes(u.req_mem_bytes)],
    ["requested CPUs", u.req_cpus ?? ""], ["CPU efficiency", fmtPct(u.cpu_efficiency)],
    ["memory efficiency", fmtPct(u.mem_efficiency)],
  ] : []);
  fillKv($("job-results"), Object.entries(job.results));
  const hist = $("job-history");
  hist.replaceChildren();
  for (const h of job.history) {
    const row = el("tr");
    row.append(el("td", h.at), el("td", `${h.from || "(new)"} \u2192 ${h.to}`), el("td", h.by));
    hist.append(row);
  }
  for (const [name, log] of [["stdout", out], ["stderr", err]]) {
    $(`job-${name}-path`).textContent = log.path || "";
    $(`job-${name}`).textContent = log.lines ? log.lines.join("\n") : `(${log.unreadable})`;
  }
}

// --- failures and trend -----------------------------------------------------------------

async function loadFailures() {
  const data = await api(`${tagPath()}/failures`);
  const body = $("failures").tBodies[0];
  body.replaceChildren();
  if (!data.groups.length) body.append(el("tr", "no failed jobs"));
  for (const g of data.groups.slice(0, 50)) {
    const row = el("tr");
    row.append(el("td", g.count), el("td", g.state, `s-${g.state}`), el("td", g.exit),
      el("td", [g.reason, g.message].filter(Boolean).join(" ") || "(empty stderr)"),
      el("td", g.examples.join(" "), "dim"));
    body.append(row);
  }
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

async function loadTrend() {
  const key = $("trend-key").value.trim();
  const chart = $("trend-chart");
  if (!key) return;
  view.trendKey = key;
  view.trendAgg = $("trend-agg").value;
  const q = new URLSearchParams({ key, agg: view.trendAgg, bins: 600 });
  const data = await api(`${tagPath()}/trend?${q}`);
  const s = data.summary;
  $("trend-summary").textContent = `${s.jobs} jobs, ${s.with_value} with a value, ${s.gaps} gaps` +
    (s.with_value ? `; min ${s.min.toPrecision(4)}, mean ${s.mean.toPrecision(4)}, max ${s.max.toPrecision(4)}` : "");
  chart.replaceChildren();
  const bins = data.bins;
  if (!s.with_value) return;
  const W = 900, H = 260, pad = 30, lo = s.min, hi = s.max === s.min ? s.min + 1 : s.max;
  const x = (i) => pad + (bins.length === 1 ? 0 : (i * (W - 2 * pad)) / (bins.length - 1));
  const y = (v) => H - pad - ((v - lo) / (hi - lo)) * (H - 2 * pad);
  chart.append(svg("line", { x1: pad, y1: H - pad, x2: W - pad, y2: H - pad, class: "axis" }));
  chart.append(svg("text", { x: 2, y: pad }, hi.toPrecision(4)));
  chart.append(svg("text", { x: 2, y: H - pad }, lo.toPrecision(4)));
  let segment = [];
  const flush = () => {
    if (segment.length) chart.append(svg("polyline", { points: segment.join(" "), class: "line" }));
    segment = [];
  };
  bins.forEach((b, i) => {
    if (b.mean === null) { flush(); return; }  // a gap breaks the line
    if (b.jobs > 1 && b.max > b.min) {
      chart.append(svg("rect", { x: x(i) - 1, y: y(b.max), width: 2, height: y(b.min) - y(b.max), class: "band" }));
    }
    segment.push(`${x(i).toFixed(1)},${y(b.mean).toFixed(1)}`);
  });
  flush();
  chart.append(svg("text", { x: pad, y: H - 8 }, `job ${bins[0].first}`));
  chart.append(svg("text", { x: W - pad, y: H - 8, "text-anchor": "end" }, `job ${bins[bins.length - 1].last}`));
}

// --- live updates ----------------------------------------------------------------------

async function jobChanged(after) {
  // Reload the open job only when a new event names it (a job page can cost a keyspace
  // walk for results written without an index), or when too many came to tell.
  const q = new URLSearchParams({ after, count: 1000 });
  const data = await api(`${tagPath()}/events?${q}`);
  return data.events.length >= 1000 || data.events.some((e) => e.job === view.job);
}

async function refresh(force) {
  try {
    const data = await api(`${tagPath()}?events=10`);
    const previous = view.lastEvent;
    const changed = force || data.last_event_id !== previous;
    renderOverview(data);
    if (changed) {
      view.lastEvent = data.last_event_id;
      saveHash();
      await loadJobs();
      if (view.job && (force || !previous || await jobChanged(previous))) await loadJob();
    }
    showError(null);
  } catch (err) {
    showError(err);
  }
}

async function start() {
  loadHash();
  const filter = $("state-filter");
  for (const name of STATES) {
    const option = el("option", name);
    option.value = name;
    filter.append(option);
  }
  filter.value = view.state;
  filter.addEventListener("change", () => setState(filter.value));
  $("per-page").addEventListener("change", () => {
    view.limit = Number($("per-page").value);
    view.offset = 0;
    refresh(true);
  });
  $("tag").addEventListener("change", () => {
    view.tag = $("tag").value;
    view.offset = 0;
    view.job = null;
    $("job-panel").hidden = true;
    refresh(true);
    loadFailures().catch(showError);
  });
  $("prev").addEventListener("click", () => {
    view.offset = Math.max(0, view.offset - view.limit);
    refresh(true);
  });
  $("next").addEventListener("click", () => {
    view.offset += view.limit;
    refresh(true);
  });
  for (const th of $("jobs").tHead.rows[0].cells) {
    if (!th.dataset.sort) continue;
    th.addEventListener("click", () => {
      view.desc = view.sort === th.dataset.sort ? !view.desc : false;
      view.sort = th.dataset.sort;
      view.offset = 0;
      refresh(true);
    });
  }
  $("job-close").addEventListener("click", () => {
    view.job = null;
    $("job-panel").hidden = true;
    saveHash();
  });
  $("failures-load").addEventListener("click", () => loadFailures().catch(showError));
  $("trend-go").addEventListener("click", () => loadTrend().catch(showError));
  $("trend-key").addEventListener("keydown", (e) => {
    if (e.key === "Enter") loadTrend().catch(showError);
  });
  try {
    if (!(await loadTags())) return;
  } catch (err) {
    showError(err);
    return;
  }
  await refresh(true);
  loadFailures().catch(showError);
  const poll = async () => {
    await refresh(false);
    setTimeout(poll, POLL_MS);
  };
  setTimeout(poll, POLL_MS);
}

start();
