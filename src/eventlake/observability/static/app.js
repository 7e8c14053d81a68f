// eventlake live dashboard: one EventSource, redraw on every snapshot (no reload, no CDN).
"use strict";
const COLORS = ["#4e9af1", "#3ecf8e", "#f5a623", "#ff5c5c", "#b57bff", "#2dd4bf", "#f472b6", "#a3e635", "#fb923c", "#94a3b8"];
const charts = {};
const fmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const fmt2 = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });

function el(id) { return document.getElementById(id); }

function rows(id, items, cells) {
  const body = el(id).querySelector("tbody");
  body.replaceChildren(...items.map((item) => {
    const tr = document.createElement("tr");
    for (const [text, cls] of cells(item)) {
      const td = document.createElement("td");
      td.textContent = text;
      if (cls) td.className = cls;
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
      axes: [{ stroke: "#8b94a7", grid: { stroke: "#243049" } }, { stroke: "#8b94a7", grid: { stroke: "#243049" }, size: 70 }],
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
  rows("tbl-queries", queries, ([name, q]) => [
    [name], [fmt.format(q.rows_per_s), "num"], [fmt2.format(q.avg_batch_s), "num"],
    [fmt.format(q.lag), "num " + (q.lag > 1000 ? "warn" : "")],
    [q.watermark_delay_s === undefined ? "–" : fmt.format(q.watermark_delay_s), "num"],
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
  };
}

connect();
