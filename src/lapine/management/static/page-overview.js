// Overview: totals, live charts of queued messages and message rates, the node, definitions.

import { api, get } from "./api.js";
import { Series, renderChart } from "./chart.js";
import { bytes, esc, notify, num } from "./ui.js";

const QUEUED = ["messages_ready", "messages_unacknowledged", "messages"];
const RATES = ["publish", "confirm", "deliver_get", "redeliver", "ack", "get_empty", "drop_unroutable"];

// Kept across visits to the page, so the charts do not start empty each time.
const queued = new Series(QUEUED);
const rates = new Series(RATES);

export function mount(root) {
  root.innerHTML = `
    <h1>Overview <small id="cluster"></small></h1>
    <div class="totals" id="totals"></div>
    <div class="grid">
      <section class="card"><h2>Queued messages</h2><div id="chart-queued"></div></section>
      <section class="card"><h2>Message rates <small class="muted">(per second)</small></h2><div id="chart-rates"></div></section>
    </div>
    <div class="grid" style="margin-top:20px">
      <section class="card"><h2>Node</h2><dl class="kv" id="node"></dl></section>
      <section class="card"><h2>Listening ports</h2><div id="listeners"></div></section>
    </div>
    <section class="card" style="margin-top:20px" id="definitions-card">
      <h2>Definitions</h2>
      <div class="inline">
        <button id="export" class="primary">Download definitions</button>
        <input type="file" id="import-file" accept=".json,application/json">
        <button id="import">Upload definitions</button>
      </div>
    </section>`;
  root.querySelector("#export").addEventListener("click", exportDefinitions);
  root.querySelector("#import").addEventListener("click", () => importDefinitions(root));
}

async function exportDefinitions() {
  try {
    const data = await get("/definitions");
    const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = "lapine-definitions.json";
    link.click();
  } catch (error) {
    notify(`Export failed: ${error.message}`);
  }
}

async function importDefinitions(root) {
  const file = root.querySelector("#import-file").files[0];
  if (!file) return notify("Choose a definitions file first");
  try {
    await api("POST", "/definitions", JSON.parse(await file.text()));
    notify("Definitions imported", "info");
  } catch (error) {
    notify(`Import failed: ${error.message}`);
  }
}

export async function refresh(root, ctx) {
  const overview = await get("/overview");
  root.querySelector("#cluster").textContent = `${overview.cluster_name} · ${overview.product_name} ${overview.product_version}`;
  const totals = overview.object_totals || {};
  const qt = overview.queue_totals || {};
  const cards = [
    ["Connections", totals.connections], ["Channels", totals.channels], ["Exchanges", totals.exchanges],
    ["Queues", totals.queues], ["Consumers", totals.consumers], ["Messages", qt.messages],
  ];
  root.querySelector("#totals").innerHTML = cards
    .map(([label, value]) => `<div class="total"><div class="label">${label}</div><div class="value">${num(value || 0)}</div></div>`)
    .join("");
  queued.add(qt);
  const stats = overview.message_stats || {};
  rates.add(Object.fromEntries(RATES.map((name) => [name, (stats[`${name}_details`] || { rate: 0 }).rate])));
  renderChart(root.querySelector("#chart-queued"), queued, ["Ready", "Unacked", "Total"]);
  renderChart(root.querySelector("#chart-rates"), rates, ["Publish", "Confirm", "Deliver / get", "Redelivered", "Ack", "Get (empty)", "Unroutable (drop)"], "/s");
  const listeners = overview.listeners || [];
  root.querySelector("#listeners").innerHTML = listeners.length
    ? `<table><thead><tr><th>Protocol</th><th>Bound to</th><th class="num">Port</th></tr></thead><tbody>${listeners
        .map((l) => `<tr><td>${esc(l.protocol)}</td><td>${esc(l.ip_address)}</td><td class="num">${l.port}</td></tr>`)
        .join("")}</tbody></table>`
    : '<p class="muted">Shown to monitoring users and administrators.</p>';
  if (ctx.tags.includes("administrator") || ctx.tags.includes("monitoring")) {
    const [node] = await get("/nodes");
    root.querySelector("#node").innerHTML = [
      ["Name", esc(node.name)], ["Uptime", uptime(node.uptime)], ["Memory", bytes(node.mem_used)],
      ["File descriptors", `${num(node.fd_used)} / ${num(node.fd_total)}`], ["Disk free", bytes(node.disk_free)],
      ["Processors", num(node.processors)], ["Version", esc(overview.product_version)],
    ].map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("");
  } else {
    root.querySelector("#node").innerHTML = `<dt>Name</dt><dd>${esc(overview.node)}</dd>`;
  }
  root.querySelector("#definitions-card").classList.toggle("hidden", !ctx.tags.includes("administrator"));
}

function uptime(ms) {
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : `${m}m ${s % 60}s`;
}
