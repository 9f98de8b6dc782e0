/* leaklab dashboard: polls the JSON API, draws uPlot charts and a
 * d3-flame-graph of the heap's call stacks, drives flags.
 * Everything from the server is inserted as text, never as HTML. */
"use strict";

const POLL_MS = 1000;       /* charts and stats */
const SLOW_POLL_MS = 2000;  /* leaks and events */
const KEEP_S = 3600;        /* seconds of history kept in the page */
const TOP_SITES = 6;        /* site series drawn */

/* ---- helpers ---- */

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];
function bytes(n) {
  if (n === null || n === undefined || !isFinite(n)) return "–";
  let v = Math.abs(n), u = 0;
  while (v >= 1024 && u < UNITS.length - 1) { v /= 1024; u++; }
  const s = (n < 0 ? "-" : "") + (v >= 100 || u === 0 ? v.toFixed(0) : v.toFixed(1));
  return s + " " + UNITS[u];
}
function rate(n) {
  if (!isFinite(n)) return "–";
  return n >= 100 ? n.toFixed(0) : n.toFixed(1);
}
function duration(s) {
  if (s === null || s === undefined || !isFinite(s)) return "–";
  if (s < 90) return s.toFixed(0) + " s";
  if (s < 5400) return (s / 60).toFixed(0) + " min";
  return (s / 3600).toFixed(1) + " h";
}
function clock(ms) {
  return new Date(ms).toLocaleTimeString([], {hour12: false});
}

let token = sessionStorage.getItem("leaklab-token") || "";

/* GET or send JSON; throws an Error carrying the server's message. */
async function api(path, opts = {}) {
  const headers = {};
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  if (token && opts.method && opts.method !== "GET") headers["Authorization"] = "Bearer " + token;
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 4000);
  try {
    const res = await fetch(path, {
      method: opts.method || "GET", headers, signal: ctl.signal, cache: "no-store",
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    });
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!res.ok) {
      const msg = data && data.error ? data.error : res.status + " " + res.statusText;
      const err = new Error(msg);
      err.status = res.status;
      throw err;
    }
    return data;
  } finally {
    clearTimeout(timer);
  }
}

/* ---- connection state ---- */

const conn = {
  failures: 0,
  server: null, /* started_at of the shared region, pid of the first process */
  set(state, text) {
    const p = $("#conn");
    p.dataset.state = state;
    p.textContent = text;
  },
  ok() {
    if (this.failures) this.failures = 0;
    this.set("live", "live");
  },
  fail() {
    this.failures++;
    this.set("lost", this.failures > 2 ? "reconnecting…" : "live (retrying)");
  },
};

/* ---- data kept in the page ---- */

const store = window.leaklabStore = {
  t: [], rss: [], live: [], mapped: [],
  sites: new Map(),     /* site name -> array aligned with t */
  siteNames: [],        /* index -> name, from the server's sample payloads */
  lastMs: 0,
  rps: {t: [], byStatus: new Map()},
  lastStats: null,      /* the previous sample's {t, by} (answers by status) */
  markers: [],          /* {t (s), type} */
  eventSeq: 0,
};

function resetStore() {
  store.t = []; store.rss = []; store.live = []; store.mapped = [];
  store.sites = new Map();
  store.lastMs = 0;
  store.rps = {t: [], byStatus: new Map()};
  store.lastStats = null;
  store.markers = [];
  store.eventSeq = 0;
  $("#events tbody").replaceChildren();
  resetFlame();
}

function trim() {
  const cut = Date.now() / 1000 - KEEP_S;
  let k = 0;
  while (k < store.t.length && store.t[k] < cut) k++;
  if (k) {
    store.t.splice(0, k); store.rss.splice(0, k); store.live.splice(0, k); store.mapped.splice(0, k);
    for (const arr of store.sites.values()) arr.splice(0, k);
  }
  k = 0;
  while (k < store.rps.t.length && store.rps.t[k] < cut) k++;
  if (k) {
    store.rps.t.splice(0, k);
    for (const arr of store.rps.byStatus.values()) arr.splice(0, k);
  }
  store.markers = store.markers.filter((m) => m.t >= cut);
}

/* One history sample, whatever its exact layout, as the fields we chart. */
function sampleFields(s) {
  const heap = s.heap || {};
  return {
    t_ms: s.t_ms,
    rss: s.rss_bytes ?? (s.process && s.process.rss_bytes),
    live: heap.live_bytes ?? s.live_bytes,
    mapped: heap.mapped_bytes ?? s.mapped_bytes,
    sites: s.top_sites || s.sites || [],
    by: s.by_status || null,
  };
}

/* Requests per second by status between this sample and the one before,
 * from the lifetime counts the history carries: a page opened late draws
 * the whole window, not only what it polled itself. */
function noteRates(t, by) {
  const prev = store.lastStats;
  store.lastStats = {t, by};
  if (!prev) return;
  const dt = t - prev.t;
  if (dt <= 0) return;
  const n = store.rps.t.length;
  store.rps.t.push(t);
  const keys = new Set([...Object.keys(by), ...store.rps.byStatus.keys()]);
  for (const k of keys) {
    let arr = store.rps.byStatus.get(k);
    if (!arr) { arr = new Array(n).fill(null); store.rps.byStatus.set(k, arr); }
    const d = (by[k] || 0) - ((prev.by && prev.by[k]) || 0);
    arr.push(d >= 0 ? d / dt : null);
  }
}

function addSample(s) {
  const f = sampleFields(s);
  if (!f.t_ms || f.t_ms <= store.lastMs) return;
  store.lastMs = f.t_ms;
  const n = store.t.length;
  store.t.push(f.t_ms / 1000);
  store.rss.push(f.rss ?? null);
  store.live.push(f.live ?? null);
  store.mapped.push(f.mapped ?? null);
  if (f.by) noteRates(f.t_ms / 1000, f.by);
  const seen = new Set();
  for (const e of f.sites) {
    const name = e.site || e.name;
    if (!name) continue;
    let arr = store.sites.get(name);
    if (!arr) { arr = new Array(n).fill(null); store.sites.set(name, arr); }
    arr.push(e.bytes ?? e.live_bytes ?? null);
    seen.add(name);
  }
  for (const [name, arr] of store.sites) if (!seen.has(name)) arr.push(null);
}

/* ---- charts ---- */

const MARK_COLOURS = {flags: "#7b1fa2", recycle: "#2e7d32", shed: "#b26a00", crash: "#c62828",
                      conns: "#455a64", oom: "#ad1457", hung: "#6d4c41"};

function markersPlugin() {
  return {
    hooks: {
      draw: (u) => {
        const ctx = u.ctx, {top, height} = u.bbox;
        ctx.save();
        ctx.lineWidth = 2 * devicePixelRatio;
        for (const m of store.markers) {
          const x = u.valToPos(m.t, "x", true);
          if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
          ctx.strokeStyle = MARK_COLOURS[m.type] || "#555";
          ctx.setLineDash(m.type === "flags" ? [4, 4] : []);
          ctx.beginPath();
          ctx.moveTo(x, top);
          ctx.lineTo(x, top + height);
          ctx.stroke();
        }
        ctx.restore();
      },
    },
  };
}

const PALETTE = ["#1f6feb", "#c62828", "#2e7d32", "#b26a00", "#7b1fa2", "#00838f", "#6d4c41", "#455a64"];

function chartOpts(el, series, yfmt) {
  return {
    width: Math.max(280, el.clientWidth),
    height: 220,
    plugins: [markersPlugin()],
    scales: {x: {time: true}},
    axes: [
      /* Times of day only: uPlot's default puts the date on a second line
       * that overlaps the first tick at 1280x800. */
      {values: (u, ticks) => ticks.map((t) => clock(t * 1000))},
      {values: (u, ticks) => ticks.map(yfmt), size: 70},
    ],
    legend: {live: true},
    series: [{}].concat(series.map((s, i) => ({
      label: s, stroke: PALETTE[i % PALETTE.length], width: 2,
      value: (u, v) => (v === null || v === undefined ? "–" : yfmt(v)),
      spanGaps: false,
    }))),
  };
}

const charts = {mem: null, sites: null, rps: null, siteKeys: "", rpsKeys: ""};

function windowS() {
  return Number($("#window").value);
}

/* The window ends now; while less history than the window exists, it
 * starts at the first sample so the lines fill the chart. */
function xRange() {
  const now = Date.now() / 1000;
  const first = Math.min(store.t.length ? store.t[0] : now, store.rps.t.length ? store.rps.t[0] : now);
  return [Math.max(now - windowS(), Math.min(first, now - 10)), now];
}

function setData(chart, data) {
  chart.setData(data, false);
  const [min, max] = xRange();
  chart.setScale("x", {min, max});
}

function drawMem() {
  const el = $("#chart-mem");
  if (!charts.mem) {
    /* RSS last, dashed and wider, so it stays visible on top of "heap
     * mapped" when the two are close (as under a leak). */
    const opts = chartOpts(el, ["heap live", "heap mapped", "RSS"], bytes);
    Object.assign(opts.series[3], {stroke: PALETTE[0], width: 3, dash: [8, 4]});
    opts.series[1].stroke = PALETTE[1];
    opts.series[2].stroke = PALETTE[2];
    charts.mem = new uPlot(opts, [[], [], [], []], el);
  }
  setData(charts.mem, [store.t, store.live, store.mapped, store.rss]);
}

function topSiteNames() {
  const last = (arr) => { for (let i = arr.length - 1; i >= 0; i--) if (arr[i] !== null) return arr[i]; return 0; };
  return [...store.sites.entries()].sort((a, b) => last(b[1]) - last(a[1])).slice(0, TOP_SITES).map((e) => e[0]);
}

function drawSites() {
  const el = $("#chart-sites");
  const names = topSiteNames();
  const key = names.join("|");
  if (!charts.sites || key !== charts.siteKeys) {
    if (charts.sites) charts.sites.destroy();
    charts.sites = new uPlot(chartOpts(el, names.length ? names : ["(no sites yet)"], bytes), [[]].concat((names.length ? names : [0]).map(() => [])), el);
    charts.siteKeys = key;
  }
  const data = [store.t].concat(names.length ? names.map((n) => store.sites.get(n)) : [store.t.map(() => null)]);
  setData(charts.sites, data);
}

function drawRps() {
  const el = $("#chart-rps");
  const statuses = [...store.rps.byStatus.keys()].sort();
  const key = statuses.join("|");
  if (!charts.rps || key !== charts.rpsKeys) {
    if (charts.rps) charts.rps.destroy();
    const labels = statuses.length ? statuses.map((s) => "HTTP " + s) : ["(no requests yet)"];
    charts.rps = new uPlot(chartOpts(el, labels, rate), [[]].concat(labels.map(() => [])), el);
    charts.rpsKeys = key;
  }
  const data = [store.rps.t].concat(statuses.length ? statuses.map((s) => store.rps.byStatus.get(s)) : [store.rps.t.map(() => null)]);
  setData(charts.rps, data);
}

function drawAll() {
  drawMem();
  drawSites();
  drawRps();
}

function resizeCharts() {
  for (const [key, id] of [["mem", "#chart-mem"], ["sites", "#chart-sites"], ["rps", "#chart-rps"]]) {
    const c = charts[key];
    if (c) c.setSize({width: Math.max(280, $(id).clientWidth), height: 220});
  }
}

/* ---- polling ---- */

function noteServer(stats) {
  /* A new server (not a new worker: those share history) restarts the
   * page's series from scratch. */
  const id = stats.uptime_s !== undefined ? Date.now() / 1000 - stats.uptime_s : null;
  if (store.serverStart !== undefined && id !== null && Math.abs(id - store.serverStart) > 5) {
    resetStore();
    loadFlags();
  }
  store.serverStart = id;
}

function showSummary(stats) {
  const p = stats.process || {}, h = stats.heap || {}, w = stats.worker || {}, g = stats.guards || {}, r = stats.requests || {};
  const c = stats.counters || {};
  // Connections refused at the accept, and closed for holding a slot
  // without using it (idle, trickling, or idle the longest when full).
  const closed = (c.conns_evicted ?? 0) + (c.conns_idle_closed ?? 0) + (c.request_timeouts ?? 0);
  const errors = stats.errors ? Object.values(stats.errors).reduce((a, b) => a + b, 0) : 0;
  $("#summary").textContent =
    `heap ${h.backend || "?"} · RSS ${bytes(p.rss_bytes)} · live ${bytes(h.live_bytes)} in ${h.live_blocks ?? "–"} blocks · ` +
    `${rate(r.rate_per_s ?? 0)} req/s · worker #${w.generation ?? "–"} (pid ${w.pid ?? "–"}) · ` +
    `errors caught ${errors} · recycles ${g.recycles ?? 0} · shed ${g.shed_requests ?? 0} · ` +
    `connections refused ${c.conns_refused ?? 0}, closed ${closed}`;
}

async function pollFast() {
  try {
    const stats = await api("/api/stats");
    noteServer(stats);
    const since = store.lastMs || Date.now() - KEEP_S * 1000;
    const hist = await api("/api/history?since=" + Math.floor(since));
    const samples = Array.isArray(hist) ? hist : hist.samples || [];
    for (const s of samples) addSample(s);
    showSummary(stats);
    conn.ok();
    trim();
    drawAll();
  } catch (e) {
    conn.fail();
  }
}

function renderLeaks(data) {
  const rows = (Array.isArray(data) ? data : data.sites || []).map((s) => {
    const growth = s.growth_bytes_per_s ?? s.growth_rate ?? null;
    const status = s.suspected_leak
      ? el("span", {class: "suspect"}, "suspected leak" + (s.seconds_to_budget ? ` · budget in ${duration(s.seconds_to_budget)}` : ""))
      : "";
    return el("tr", {},
      el("td", {}, el("code", {}, s.site || s.name || "?")),
      el("td", {}, s.route || ""),
      el("td", {class: "num"}, s.blocks ?? s.live_blocks ?? "–"),
      el("td", {class: "num"}, bytes(s.bytes ?? s.live_bytes)),
      el("td", {class: "num"}, growth === null ? "–" : bytes(growth) + "/s"),
      el("td", {class: "num"}, duration(s.oldest_age_s ?? s.oldest_s)),
      el("td", {}, status));
  });
  $("#leaks tbody").replaceChildren(...rows);
}

function eventText(ev) {
  const parts = [];
  if (ev.kind) parts.push(ev.kind);
  if (ev.text || ev.message) parts.push(ev.text || ev.message);
  if (ev.site) parts.push("allocated at " + ev.site + (ev.route ? " (" + ev.route + ")" : ""));
  if (ev.seen_at) parts.push("seen at " + ev.seen_at);
  if (ev.freed_at) parts.push("freed at " + ev.freed_at);
  return parts.join(" · ");
}

function addEvents(list) {
  const body = $("#events tbody");
  for (const ev of list) {
    if (ev.seq <= store.eventSeq) continue;
    store.eventSeq = ev.seq;
    const type = ev.type || "event";
    if (MARK_COLOURS[type] && ev.t_ms) store.markers.push({t: ev.t_ms / 1000, type});
    body.prepend(el("tr", {class: "ev-" + type},
      el("td", {class: "num"}, ev.t_ms ? clock(ev.t_ms) : ""),
      el("td", {}, type),
      el("td", {}, eventText(ev))));
  }
  while (body.children.length > 200) body.lastChild.remove();
}

async function pollSlow() {
  try {
    renderLeaks(await api("/api/leaks?top=15"));
    const evs = await api("/api/events?since=" + store.eventSeq);
    addEvents(Array.isArray(evs) ? evs : evs.events || []);
  } catch (e) {
    /* the fast poll reports the connection */
  }
}

/* ---- call stacks: a flame graph, and what grew since a mark ---- */

const TOP_STACKS = 200;  /* stacks asked for per poll, most bytes first */
const GROWTH_ROWS = 15;  /* rows of the growth table */

const flame = window.leaklabFlame = {
  view: "live",   /* live: live bytes; rate: bytes allocated per second; diff: growth since the mark */
  chart: null,
  width: 0,
  depth: null,    /* frames the server records per allocation (--stacks) */
  prevAllocs: null, /* the last order=allocs answer: {t, byKey: key -> total_bytes}, for rates */
  mark: null,     /* {t, byKey: key -> {bytes, blocks}} */
  zoom: null,     /* frame names from the root to the frame zoomed on */
  drawn: null,    /* {view, total, names: [frame names drawn]} */
  growth: [],     /* the growth table's rows */
  draws: 0,       /* graphs drawn, one per poll */
  seq: 0,         /* polls started */
};

function resetFlame() {
  flame.prevAllocs = null;
  flame.mark = null;
  flame.zoom = null;
  $("#mark-info").textContent = "";
  $("#growth-box").hidden = true;
  $('[data-view="diff"]').disabled = true;
  setFlameView("live");
}

/* A stack's identity across polls and workers: ids hold for one worker's
 * life, functions and lines for the binary's. */
function stackKey(s) {
  return s.site + "|" + s.frames.map((f) => f.function + "@" + f.file + ":" + f.line).join(";");
}

function frameLabel(f) {
  return f.site ? f.function + " · " + f.site : f.function;
}

/* The frames a reader needs to know a stack: innermost first, up to the
 * frame its site was written in. */
function stackText(s) {
  const upto = s.frames.findIndex((f) => f.site);
  const shown = s.frames.slice(0, upto >= 0 ? upto + 1 : 4);
  return shown.map((f) => f.function).join(" ← ");
}

/* d3-flame-graph's tree, outermost frame at the bottom, from stacks with
 * a value each (self values: a stack's value sits on its innermost frame). */
function flameTree(items) {
  const root = {name: "all", value: 0, children: [], kids: new Map()};
  let total = 0;
  for (const it of items) {
    if (!(it.value > 0)) continue;
    total += it.value;
    let node = root;
    for (let i = it.frames.length - 1; i >= 0; i--) {
      const f = it.frames[i], name = frameLabel(f);
      let kid = node.kids.get(name);
      if (!kid) {
        kid = {name, value: 0, children: [], kids: new Map(),
               where: f.file ? f.file + ":" + f.line : f.module};
        node.kids.set(name, kid);
        node.children.push(kid);
      }
      node = kid;
    }
    node.value += it.value;
  }
  return {root, total};
}

function flameValue(v) {
  if (flame.view === "rate") return bytes(v) + "/s";
  if (flame.view === "diff") return "+" + bytes(v);
  return bytes(v);
}

function findPath(root, names) {
  let node = root;
  for (const n of names) {
    node = (node.children || []).find((c) => c.data.name === n);
    if (!node) return null;
  }
  return node;
}

function newFlameChart(w) {
  const chart = flamegraph()
    .width(w)
    .cellHeight(18)
    .transitionDuration(250)
    .minFrameSize(2)
    .selfValue(true)
    .sort(true)
    .resetHeightOnZoom(true)
    .setDetailsElement($("#flame-details"))
    .setLabelHandler((d) => {
      const share = (100 * (d.x1 - d.x0)).toFixed(1);
      return `${d.data.name}${d.data.where ? " (" + d.data.where + ")" : ""}: ${flameValue(d.value)}, ${share} %`;
    })
    .setColorMapper((d, colour) => (flame.view === "diff" && !d.highlight ? "#e06666" : colour))
    .onClick((d) => {
      const names = d.ancestors().reverse().slice(1).map((n) => n.data.name);
      flame.zoom = names.length ? names : null;
      $("#flame-unzoom").disabled = !flame.zoom;
    });
  return chart;
}

function drawFlame(items, note) {
  const box = $("#flame");
  const {root, total} = flameTree(items);
  flame.draws++;
  flame.drawn = {view: flame.view, total, names: []};
  if (!total) {
    if (flame.chart) flame.chart.destroy();
    flame.chart = null;
    box.replaceChildren();
    $("#flame-note").textContent = note;
    return;
  }
  $("#flame-note").textContent = flame.depth === 0
    ? "leaklab runs without call stacks (--stacks 0): each block is known by its call site alone, one frame per site. Start it with --stacks 16 (scripts/run does) to see whole stacks."
    : "Width is " + (flame.view === "live" ? "live bytes" : flame.view === "rate" ? "bytes allocated per second" : "bytes added since the mark") +
      "; the outermost frame at the bottom. Click a frame to zoom.";
  const w = Math.max(280, box.clientWidth);
  if (!flame.chart || flame.width !== w) {
    if (flame.chart) flame.chart.destroy();
    box.replaceChildren();
    flame.chart = newFlameChart(w);
    flame.width = w;
    d3.select(box).datum(root).call(flame.chart);
  } else {
    flame.chart.update(root);
  }
  /* A live update draws a new tree: zoom back to the frame the reader
   * chose, while it is still there. */
  if (flame.zoom) {
    const node = findPath(d3.select(box).datum(), flame.zoom);
    if (node) flame.chart.zoomTo(node);
    else flame.zoom = null;
  }
  $("#flame-unzoom").disabled = !flame.zoom;
  const names = [];
  d3.select(box).datum().each((n) => names.push(n.data.name));
  flame.drawn.names = names;
}

function renderGrowth(live, now) {
  const mark = flame.mark;
  if (!mark) return;
  const secs = Math.max(0.001, (now - mark.t) / 1000);
  const rows = [];
  for (const s of live) {
    const then = mark.byKey.get(stackKey(s)) || {bytes: 0, blocks: 0};
    const added = s.bytes - then.bytes;
    if (added > 0) rows.push({s, added, blocks: s.blocks - then.blocks});
  }
  rows.sort((a, b) => b.added - a.added);
  flame.growth = rows.slice(0, GROWTH_ROWS).map((r) => ({stack: stackText(r.s), site: r.s.site, bytes: r.added, blocks: r.blocks}));
  $("#growth tbody").replaceChildren(...(rows.length ? rows.slice(0, GROWTH_ROWS).map((r) => el("tr", {},
    el("td", {}, el("code", {}, stackText(r.s))),
    el("td", {}, el("code", {}, r.s.site)),
    el("td", {class: "num"}, "+" + bytes(r.added)),
    el("td", {class: "num"}, r.blocks),
    /* Per second only once a second has passed: a rate over a few
     * milliseconds says nothing. */
    el("td", {class: "num"}, secs >= 1 ? bytes(r.added / secs) + "/s" : "–"),
    el("td", {class: "num"}, secs >= 1 ? rate(r.blocks / secs) : "–"))) :
    [el("tr", {}, el("td", {colspan: 6, class: "hint"}, "Nothing has grown since the mark."))]));
  $("#mark-info").textContent = `marked at ${clock(mark.t)} (${duration(secs)} ago), ${mark.byKey.size} stacks then`;
}

async function pollStacks() {
  /* The newest poll wins: one started by a click on a view draws, one
   * still in flight from the view before does not. */
  const seq = ++flame.seq;
  try {
    const live = await api("/api/stacks?order=live&top=" + TOP_STACKS);
    if (seq !== flame.seq) return;
    flame.depth = live.depth;
    renderGrowth(live.stacks, live.t_ms);
    if (flame.view === "live") {
      drawFlame(live.stacks.map((s) => ({frames: s.frames, value: s.bytes})), "No live blocks yet.");
    } else if (flame.view === "diff") {
      const items = live.stacks.map((s) => {
        const then = flame.mark.byKey.get(stackKey(s));
        return {frames: s.frames, value: s.bytes - (then ? then.bytes : 0)};
      });
      drawFlame(items, "Nothing has grown since the mark.");
    } else {
      const all = await api("/api/stacks?order=allocs&top=" + TOP_STACKS);
      if (seq !== flame.seq) return;
      const byKey = new Map(all.stacks.map((s) => [stackKey(s), s.total_bytes]));
      const prev = flame.prevAllocs;
      flame.prevAllocs = {t: all.t_ms, byKey};
      if (!prev) return drawFlame([], "Measuring the allocation rate until the next poll…");
      const dt = (all.t_ms - prev.t) / 1000;
      const items = dt > 0 ? all.stacks.map((s) => {
        const before = prev.byKey.get(stackKey(s));
        return {frames: s.frames, value: before === undefined ? 0 : (s.total_bytes - before) / dt};
      }) : [];
      drawFlame(items, "Nothing allocated since the last poll.");
    }
  } catch (e) {
    /* the fast poll reports the connection */
  }
}

function setFlameView(view) {
  flame.view = view;
  flame.zoom = null;
  if (view !== "rate") flame.prevAllocs = null;
  for (const b of document.querySelectorAll("[data-view]"))
    b.setAttribute("aria-pressed", String(b.dataset.view === view));
}

async function markStacks() {
  try {
    const live = await api("/api/stacks?order=live&top=" + TOP_STACKS);
    flame.mark = {t: live.t_ms, byKey: new Map(live.stacks.map((s) => [stackKey(s), {bytes: s.bytes, blocks: s.blocks}]))};
    $("#growth-box").hidden = false;
    $('[data-view="diff"]').disabled = false;
    $('[data-view="diff"]').title = "bytes added since the mark, by stack";
    setFlameView("diff");
    await pollStacks();
  } catch (e) {
    $("#mark-info").textContent = "Could not mark: " + e.message;
  }
}

/* ---- flags ---- */

let flagList = [];
let flagsKey = "";

function showFlagError(msg) {
  const p = $("#flag-error");
  p.textContent = msg || "";
  p.hidden = !msg;
}

async function patchFlags(obj) {
  try {
    await api("/api/flags", {method: "PATCH", body: obj});
    showFlagError("");
  } catch (e) {
    showFlagError(e.status === 401 ? "Not allowed: enter the admin token above. (" + e.message + ")" : e.message);
    flagsKey = ""; /* redraw, so controls show the real values again */
  }
  await loadFlags();
}

function isOn(f) {
  return f.value !== 0 && f.value !== false && f.value !== null;
}

function flagControl(f) {
  const name = f.name;
  const type = f.type || (typeof f.default === "boolean" ? "bool" : "number");
  if (type === "bool" || typeof f.value === "boolean") {
    return el("input", {type: "checkbox", "aria-label": name, checked: isOn(f),
      onchange: (e) => patchFlags({[name]: e.target.checked})});
  }
  if (type === "rate" || f.kind === "fault") {
    const box = el("span", {class: "rate"});
    const cb = el("input", {type: "checkbox", "aria-label": name, checked: isOn(f),
      onchange: (e) => patchFlags({[name]: e.target.checked ? 1 : 0})});
    const num = el("input", {type: "number", min: 0, max: 1, step: 0.05, value: f.value,
      "aria-label": name + " rate", title: "share of requests that hit the mistake",
      onchange: (e) => patchFlags({[name]: Number(e.target.value)})});
    box.append(cb, num);
    return box;
  }
  const num = el("input", {type: "number", min: 0, step: 1, value: f.value, "aria-label": name,
    title: type === "bytes" ? "bytes; 0 turns it off" : "0 turns it off",
    onchange: (e) => patchFlags({[name]: Number(e.target.value)})});
  const hint = el("small", {}, type === "bytes" && f.value ? " = " + bytes(f.value) : "");
  return el("span", {}, num, hint);
}

function renderFlags() {
  const list = flagList.map((f) => el("div", {class: "flag", "data-on": String(isOn(f)), "data-flag": f.name},
    el("div", {class: "head"}, el("span", {class: "name"}, f.name), flagControl(f)),
    el("p", {class: "desc"}, f.description || ""),
    f.mistake ? el("p", {class: "mistake"}, "Mistake: " + f.mistake) : ""));
  $("#flag-list").replaceChildren(...list);
  renderScenarios();
}

async function loadFlags() {
  try {
    const data = await api("/api/flags");
    const list = Array.isArray(data) ? data : data.flags || [];
    /* Re-render only on change, so a half-typed number is not lost. */
    const key = JSON.stringify(list);
    if (key === flagsKey) return;
    flagsKey = key;
    flagList = list;
    renderFlags();
  } catch (e) {
    showFlagError("Could not load flags: " + e.message);
  }
}

/* ---- guided tour ---- */

const MiB = 1024 * 1024;
const SCENARIOS = [
  {id: "forgotten-free", title: "Forgotten free", flags: {"echo.leak_tree": 1},
   story: "POST /echo parses the body into a cJSON tree and never calls cJSON_Delete. Every request leaves a whole tree behind: heap live bytes climb by the tree's size per request, RSS follows, and the top-sites table marks echo.tree as a suspected leak."},
  {id: "error-path", title: "Leak only on the error path", flags: {"echo.leak_on_error": 1},
   story: "The handler frees its buffer on success but returns early on bad JSON without freeing. Nothing grows under clean traffic; send invalid bodies (the loadtest mix does) and live bytes climb only with the 400s."},
  {id: "logical-leak", title: "The leak a leak checker misses", flags: {"session.unbounded_cache": 1},
   story: "Every session is kept in a cache that never evicts. Each entry is still reachable, so LeakSanitizer or valgrind would report no leak at exit, yet memory grows without bound. The cure is a bound (LRU), which is what turning the fault off restores. Request scopes do not help: the entries are detached on purpose."},
  {id: "off-by-one", title: "Not allocating enough", flags: {"hello.off_by_one": 1},
   story: "The greeting is copied into malloc(strlen(s)) instead of strlen(s) + 1, so the terminating NUL lands one byte past the block. The heap's guard bytes catch the write when the block is freed: see the overflow events, with the allocating site."},
  {id: "stack-return", title: "Stack versus heap", flags: {"hello.stack_return": 1},
   story: "A helper formats the greeting in its own stack buffer and returns a pointer to it; by the time the handler copies it, another call has used that stack. Try curl 127.0.0.1:8080/hello?name=ada: the answer is ### instead of the greeting. The heap catches none of it (no event, no counter): the buffer never came from the heap, the stack stays mapped and readable, and nothing was freed, only reused. What must outlive a function belongs on the heap."},
  {id: "double-free", title: "Double free", flags: {"blob.double_free": 1},
   story: "The blob handler frees its buffer twice. With glibc this corrupts the allocator or aborts; the lab heap sees that the block is already free, skips the second free and reports both the allocating and the freeing site. The server keeps serving."},
  {id: "recycling", title: "Recycling saves the day", flags: {"echo.leak_tree": 1, "guard.recycle_rss_bytes": 64 * MiB},
   story: "The tree leak is back, but now the supervisor replaces the worker whenever its RSS passes 64 MiB. The new worker starts on the same socket before the old one drains, so no request fails. RSS saws up and down: a process that exits leaks nothing, because the OS takes back its whole address space."},
  {id: "leak-kills", title: "The leak that kills", flags: {"echo.leak_tree": 1, "worker.memory_limit_bytes": 96 * MiB},
   story: "The tree leak, with no guard, on a worker whose heap may map at most 96 MiB (worker.memory_limit_bytes: a small machine, made on purpose). Live bytes climb to the limit; then the heap refuses to grow: /echo answers 503 \u201cout of memory\u201d naming the size and the site, each refusal is an oom event (the pink marks), and the page goes on answering from a reserve kept for the observer. Where the code cannot take a NULL (GET /blob, as a C program's xmalloc) the worker dies with exit status 3; the supervisor says it ran out of memory (a red mark) and starts a fresh one, and the climb begins again."},
  {id: "leak-contained", title: "The same leak, recycled in time", flags: {"echo.leak_tree": 1, "worker.memory_limit_bytes": 96 * MiB, "guard.recycle_rss_bytes": 80 * MiB},
   story: "The same leak and the same 96 MiB limit, with recycling at 80 MiB of RSS: the supervisor replaces the worker before its heap reaches the limit, the successor serving before the old one drains. No request fails, no oom event, no crash: only green recycle marks on a saw-tooth."},
  {id: "exit-frees-all", title: "A process that exits leaks nothing", flags: {"echo.leak_tree": 1},
   story: "The tree leak runs with no guard: live bytes and RSS climb. Now press \u201cReplace the worker now\u201d. A new worker starts on the same socket, the old one drains and exits, and live bytes and RSS drop back to where a fresh worker starts, at once: when a process exits the OS takes back its whole address space, every page it leaked included."},
  {id: "scopes", title: "Scopes as request pools", flags: {"echo.leak_tree": 1, "guard.request_scope": true},
   story: "Every request allocates inside a heap scope, like an APR or nginx request pool. When the request ends, whatever it still holds is freed and counted as reclaimed. The forgotten tree no longer accumulates: live bytes stay flat while the reclaimed counter climbs."},
];

function renderScenarios() {
  const known = new Set(flagList.map((f) => f.name));
  const buttons = SCENARIOS.map((s) => {
    const missing = Object.keys(s.flags).filter((n) => !known.has(n));
    return el("button", {type: "button", "data-scenario": s.id, "aria-pressed": "false",
      disabled: missing.length > 0, title: missing.length ? "needs " + missing.join(", ") : "",
      onclick: () => applyScenario(s)}, s.title);
  });
  $("#scenarios").replaceChildren(...buttons);
}

async function applyScenario(s) {
  /* One PATCH: every flag back to its default, then the scenario's. */
  const body = {};
  for (const f of flagList) body[f.name] = f.default;
  Object.assign(body, s.flags);
  await patchFlags(body);
  for (const b of document.querySelectorAll("#scenarios button"))
    b.setAttribute("aria-pressed", String(b.dataset.scenario === s.id));
  $("#story").textContent = s.story;
}

/* ---- start ---- */

function start() {
  $("#token").value = token;
  $("#token").addEventListener("change", (e) => {
    token = e.target.value;
    sessionStorage.setItem("leaklab-token", token);
  });
  $("#reset").addEventListener("click", async () => {
    try {
      await api("/api/flags/reset", {method: "POST"});
      showFlagError("");
    } catch (e) {
      showFlagError(e.message);
    }
    $("#story").textContent = "";
    await loadFlags();
  });
  $("#recycle").addEventListener("click", async () => {
    try {
      await api("/api/recycle", {method: "POST"});
      showFlagError("");
    } catch (e) {
      showFlagError(e.message);
    }
  });
  $("#window").addEventListener("change", drawAll);
  for (const b of document.querySelectorAll("[data-view]"))
    b.addEventListener("click", () => { setFlameView(b.dataset.view); pollStacks(); });
  $("#mark").addEventListener("click", markStacks);
  $("#flame-unzoom").addEventListener("click", () => {
    flame.zoom = null;
    if (flame.chart) flame.chart.resetZoom();
    $("#flame-unzoom").disabled = true;
  });
  new ResizeObserver(resizeCharts).observe($(".charts"));
  loadFlags();
  pollFast();
  pollSlow();
  pollStacks();
  setInterval(pollFast, POLL_MS);
  setInterval(pollSlow, SLOW_POLL_MS);
  setInterval(pollStacks, SLOW_POLL_MS);
  setInterval(loadFlags, 5000);
}

start();
