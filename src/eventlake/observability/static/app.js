// eventlake live dashboard: one EventSource, redraw on every snapshot (no reload, no CDN).
"use strict";
const COLORS = ["#4e9af1", "#3ecf8e", "#f5a623", "#ff5c5c", "#b57bff", "#2dd4bf", "#f472b6", "#a3e635", "#fb923c", "#94a3b8"];
const charts = {};
const fmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const fmt2 = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });
const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });

// Seconds as a duration a reader can take in: "0.42 s", "12.3 s", "5.2 min", "3.1 h", "328 d".
function duration(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return "–";
  const a = Math.abs(s);
  if (a < 10) return `${s.toFixed(2)} s`;
  if (a < 120) return `${s.toFixed(1)} s`;
  if (a < 7200) return `${(s / 60).toFixed(1)} min`;
  if (a < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${fmt.format(s / 86400)} d`;
}

// "gold updated 2 s ago"
function ago(s) {
  if (s === null || s === undefined) return "never";
  return s < 120 ? `${Math.round(s)} s ago` : `${duration(s)} ago`;
}

// A latency of hours or days is the age of replayed event times, not a pipeline delay: say so.
const REPLAY_HINT = "event times this old: a replayed historical stream, not pipeline delay";
function latencyTitle(s) { return s !== null && s > 3600 ? REPLAY_HINT : ""; }

// Y tick labels: compact ("20K", "1.5M") so they stay short; the axis is sized to the longest one.
function yValues(u, splits) {
  return splits.map((v) => (v === null ? "" : Math.abs(v) >= 10000 ? compact.format(v) : fmt2.format(v)));
}

function axisSize(u, values, axisIdx, cycleNum) {
  const axis = u.axes[axisIdx];
  let size = axis.ticks.size + axis.gap;
  const longest = (values || []).reduce((acc, v) => (String(v).length > acc.length ? String(v) : acc), "");
  if (longest !== "") {
    u.ctx.font = axis.font[0];
    size += u.ctx.measureText(longest).width / devicePixelRatio;
  }
  size = Math.ceil(size) + 4;
  // Later layout passes may pick other ticks (the plot got shorter): never shrink within one layout,
  // so the labels of every pass fit and the passes converge.
  return cycleNum > 1 && axis._size ? Math.max(size, axis._size) : size;
}

function el(id) { return document.getElementById(id); }

function rows(id, items, cells) {
  const body = el(id).querySelector("tbody");
  body.replaceChildren(...items.map((item) => {
    const tr = document.createElement("tr");
    for (const [text, cls, title] of cells(item)) {
      const td = document.createElement("td");
      td.textContent = text;
      if (cls) td.className = cls;
      if (title) td.title = title;
      tr.appendChild(td);
    }
    return tr;
  }));
}

function draw(id, data) {
  const target = el(id);
  const keys = Object.keys(data.series);
  const aligned = [data.t, ...keys.map((k) => data.series[k])];
  const signature = keys.join("|");
  const width = Math.max(280, target.clientWidth);
  if (!charts[id] || charts[id].signature !== signature) {
    if (charts[id]) charts[id].plot.destroy();
    const opts = {
      width, height: 240,
      scales: { x: { time: true } },
      axes: [
        { stroke: "#8b94a7", grid: { stroke: "#243049" } },
        { stroke: "#8b94a7", grid: { stroke: "#243049" }, values: yValues, size: axisSize },
      ],
      series: [{}, ...keys.map((k, i) => ({ label: k, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true }))],
    };
    charts[id] = { plot: new uPlot(opts, aligned, target), signature };
  } else {
    charts[id].plot.setData(aligned);
  }
  target.dataset.points = String(data.t.length);
}

function render(s) {
  const k = s.kpis;
  el("kpi-events").textContent = fmt.format(k.activity.total);
  el("kpi-window").textContent = `last ${s.window_minutes} min of data`;
  el("kpi-amount").textContent = fmt2.format(k.transactions.total_amount);
  el("kpi-anomalies").textContent = fmt.format(k.iot.anomalies);
  const alerts = s.quality.alerts;
  el("kpi-alerts").textContent = String(alerts.length);
  el("kpi-alerts").className = "value " + (alerts.some((a) => a.severity === "critical") ? "bad" : alerts.length ? "warn" : "good");
  el("kpi-alerts-critical").textContent = `${alerts.filter((a) => a.severity === "critical").length} critical`;
  const queries = Object.entries(s.pipeline.queries);
  el("kpi-pipeline").textContent = s.pipeline.running ? `${queries.length} queries` : "not running";
  el("kpi-lag").textContent = `lag ${fmt.format(queries.reduce((n, [, q]) => n + q.lag, 0))} records`;
  const lat = s.latency;
  const measured = lat.tables.filter((t) => t.rows > 0);
  const worst = measured.length ? Math.max(...measured.map((t) => t.p99_s)) : null;
  el("kpi-latency").textContent = duration(worst);
  el("kpi-latency").className = "value " + (worst === null ? "" : worst <= 3 ? "good" : worst <= 30 ? "warn" : "bad");
  el("kpi-latency-sub").textContent =
    `${worst !== null && worst > 3600 ? "historical event times (replay?)" : "worst gold table"} · gold updated ${ago(lat.updated_ago_s)}`;

  draw("chart-activity", k.activity);
  draw("chart-transactions", k.transactions);
  draw("chart-iot", k.iot);

  rows("tbl-categories", k.transactions.categories, (c) => [
    [c.category], [fmt.format(c.txns), "num"], [fmt.format(c.declined), "num"],
    [(100 * c.decline_rate).toFixed(1) + " %", "num " + (c.decline_rate > 0.1 ? "warn" : "")],
  ]);
  rows("tbl-devices", k.iot.devices, (d) => [
    [d.device], [d.type], [fmt.format(d.readings), "num"], [fmt2.format(d.avg), "num"],
    [String(d.anomalies), "num " + (d.anomalies ? "bad" : "")],
  ]);
  const span = `${fmt.format(s.pipeline.batch_span_s || 60)} s`;
  rows("tbl-queries", queries, ([name, q]) => {
    const recent = q.batch_scope === "recent";
    const scope = recent
      ? `${fmt.format(q.batch_n)} batches that ended in the last ${fmt.format(q.batch_span_s)} s`
      : `no batch ended in the last ${span}: all ${fmt.format(q.batch_n || 0)} batches since the process started`;
    const cls = "num" + (recent ? "" : " muted");
    return [
      [name], [fmt.format(q.rows_per_s), "num"],
      [q.batches_per_min === null || q.batches_per_min === undefined ? "–" : fmt.format(q.batches_per_min), "num"],
      [duration(q.batch_mean_s), cls, scope], [duration(q.batch_p95_s), cls, scope + " (p95 within histogram buckets)"],
      [q.last_batch_ago_s === undefined ? "–" : ago(q.last_batch_ago_s), "num"],
      [fmt.format(q.lag), "num " + (q.lag > 1000 ? "warn" : "")],
      [duration(q.event_time_lag_s), "num", "now − newest event time; large for a replayed historical stream"],
    ];
  });
  rows("tbl-latency", lat.tables, (t) => [
    [t.table],
    [fmt.format(t.windows), "num", `${fmt.format(t.rows)} rows of the last ${fmt.format(t.windows)} closed windows`],
    [duration(t.p50_s), "num", latencyTitle(t.p50_s)],
    [duration(t.p99_s), "num " + (t.p99_s === null ? "" : t.p99_s <= 3 ? "good" : t.p99_s <= 30 ? "warn" : "bad"), latencyTitle(t.p99_s)],
    [ago(t.updated_ago_s), "num"],
  ]);
  rows("tbl-rules", s.quality.rules, (r) => [
    [r.source], [r.rule], [fmt.format(r.checked), "num"], [fmt.format(r.failed), "num"],
    [(100 * r.pass_rate).toFixed(2) + " %", "num " + (r.failed ? (r.severity === "critical" ? "bad" : "warn") : "good")],
  ]);
  rows("tbl-alerts", alerts, (a) => [
    [a.key], [a.severity, a.severity === "critical" ? "bad" : "warn"], [a.first_seen.slice(11, 19)], [a.message],
  ]);
  el("status-text").textContent = "updated " + new Date(s.generated_at).toLocaleTimeString();
  window.eventlake = { last: s };
  document.body.dataset.updates = String(Number(document.body.dataset.updates) + 1);
}

function connect() {
  const source = new EventSource("/api/events");
  source.addEventListener("snapshot", (e) => {
    el("status-dot").className = "dot live";
    render(JSON.parse(e.data));
  });
  source.addEventListener("problem", (e) => {
    el("status-dot").className = "dot down";
    el("status-text").textContent = "data unavailable: " + JSON.parse(e.data).detail;
  });
  source.onerror = () => {
    el("status-dot").className = "dot down";
    el("status-text").textContent = "reconnecting…";
    // A refused stream (503: the dashboard serves dashboard.max_clients already) is closed for good
    // by EventSource: try again later, with jitter so that refused browsers do not return at once.
    if (source.readyState === EventSource.CLOSED) {
      el("status-text").textContent = "dashboard busy, retrying…";
      setTimeout(connect, 10000 + Math.random() * 10000);
    }
  };
}

connect();
