// Queues: the list with its add form, and one queue's page (stats, consumers, bindings, publish,
// get, purge, delete).

import { api, get, seg } from "./api.js";
import { addBinding, bindingForm, bindingTable } from "./bindings.js";
import { Series, renderChart } from "./chart.js";
import { getForm, getMessages, publish, publishForm } from "./messages.js";
import { Table, badges, bytes, esc, formValues, notify, num, parseArguments, rate, stateCell, vhostOptions } from "./ui.js";

export const queueList = {
  mount(root, ctx) {
    root.innerHTML = `
      <h1>Queues</h1>
      <section class="card">
        <div class="inline" style="margin-bottom:12px"><h2 style="margin:0">All queues <small class="muted" id="count"></small></h2>
          <input class="filter" id="filter" placeholder="Filter by name"></div>
        <div id="list"></div>
      </section>
      <section class="card"><details><summary>Add a new queue</summary>
        <form class="form" id="add">
          <label>Virtual host</label><select name="vhost">${vhostOptions(ctx.vhosts, ctx.vhost || "/")}</select>
          <label>Type</label><select name="type"><option value="classic">Classic</option><option value="quorum">Quorum</option></select>
          <label>Name</label><input name="name" required>
          <label>Type</label><select name="type"><option value="classic">Classic</option><option value="stream">Stream</option></select>
          <label>Durability</label><select name="durable"><option value="true">Durable</option><option value="false">Transient</option></select>
          <label>Auto delete</label><select name="auto_delete"><option value="false">No</option><option value="true">Yes</option></select>
          <label>Arguments</label><textarea name="arguments" placeholder="x-message-ttl=60000&#10;x-max-length=1000"></textarea>
          <div class="actions"><button class="primary" type="submit">Add queue</button></div>
        </form></details></section>`;
    this.table = new Table(root.querySelector("#list"), [
      { title: "Virtual host", value: (q) => esc(q.vhost) },
      { title: "Name", value: (q) => `<a href="#/queues/${seg(q.vhost)}/${seg(q.name)}">${esc(q.name)}</a>`, sort: (q) => q.name },
      { title: "Type", value: (q) => esc(q.type) },
      { title: "Features", value: (q) => badges(q), sort: (q) => String(q.durable) },
      { title: "State", value: (q) => stateCell(q.state) },
      { title: "Ready", value: (q) => num(q.messages_ready), sort: (q) => q.messages_ready, num: true },
      { title: "Unacked", value: (q) => num(q.messages_unacknowledged), sort: (q) => q.messages_unacknowledged, num: true },
      { title: "Total", value: (q) => num(q.messages), sort: (q) => q.messages, num: true },
      { title: "Incoming", value: (q) => rate(q.message_stats, "publish"), sort: (q) => r(q, "publish"), num: true },
      { title: "Deliver / get", value: (q) => rate(q.message_stats, "deliver_get"), sort: (q) => r(q, "deliver_get"), num: true },
      { title: "Ack", value: (q) => rate(q.message_stats, "ack"), sort: (q) => r(q, "ack"), num: true },
    ], { empty: "No queues", rowKey: (q) => `${q.vhost}/${q.name}` });
    this.table.sortIndex = 1;
    root.querySelector("#filter").addEventListener("input", () => this.draw(root));
    root.querySelector("#add").addEventListener("submit", (event) => {
      event.preventDefault();
      addQueue(event.target);
    });
  },
  async refresh(root, ctx) {
    this.rows = await get(ctx.vhost ? `/queues/${seg(ctx.vhost)}` : "/queues");
    this.draw(root);
  },
  draw(root) {
    const needle = root.querySelector("#filter").value.toLowerCase();
    const rows = (this.rows || []).filter((q) => q.name.toLowerCase().includes(needle));
    root.querySelector("#count").textContent = `(${rows.length})`;
    this.table.render(rows);
  },
};

function r(item, name) {
  const details = item.message_stats && item.message_stats[`${name}_details`];
  return details ? details.rate : 0;
}

async function addQueue(form) {
  const v = formValues(form);
  try {
    const body = { durable: v.durable === "true", auto_delete: v.auto_delete === "true", arguments: parseArguments(v.arguments) };
    if (v.type && v.type !== "classic") body.arguments["x-queue-type"] = v.type;
    await api("PUT", `/queues/${seg(v.vhost)}/${seg(v.name)}`, body);
    notify(`Queue ${v.name} added`, "info");
    form.reset();
  } catch (error) {
    notify(`Could not add queue: ${error.message}`);
  }
}

export function queuePage(vhost, name) {
  const series = new Series(["messages_ready", "messages_unacknowledged"]);
  const path = `/queues/${seg(vhost)}/${seg(name)}`;
  return {
    mount(root) {
      root.innerHTML = `
        <h1>Queue ${esc(name)} <small>in virtual host ${esc(vhost)}</small></h1>
        <div class="grid">
          <section class="card"><h2>Details</h2><dl class="kv" id="details"></dl></section>
          <section class="card"><h2>Queued messages</h2><div id="chart"></div></section>
        </div>
        <div class="stack" style="margin-top:20px">
          <section class="card"><h2>Consumers</h2><div id="consumers"></div></section>
          <section class="card"><h2>Bindings</h2><div id="bindings"></div>
            <details style="margin-top:14px"><summary>Add binding to this queue</summary>${bindingForm("to-queue")}</details></section>
          <section class="card"><h2>Publish message</h2>${publishForm(false)}</section>
          <section class="card"><h2>Get messages</h2>${getForm()}</section>
          <section class="card"><h2>Purge and delete</h2>
            <div class="inline"><button class="danger" id="purge">Purge messages</button><button class="danger" id="delete">Delete queue</button></div></section>
        </div>`;
      this.consumers = new Table(root.querySelector("#consumers"), [
        { title: "Channel", value: (c) => esc(c.channel_details.name) },
        { title: "Consumer tag", value: (c) => `<span class="mono">${esc(c.consumer_tag)}</span>` },
        { title: "Ack required", value: (c) => (c.ack_required ? "yes" : "no") },
        { title: "Exclusive", value: (c) => (c.exclusive ? "yes" : "no") },
        { title: "Prefetch", value: (c) => num(c.prefetch_count), sort: (c) => c.prefetch_count, num: true },
      ], { empty: "No consumers" });
      this.bindings = bindingTable(root.querySelector("#bindings"), "to-queue");
      root.addEventListener("submit", (event) => {
        event.preventDefault();
        const kind = event.target.dataset.form;
        if (kind === "publish") publish(event.target, vhost, "", name);
        if (kind === "get") getMessages(event.target, vhost, name);
        if (kind === "bind") addBinding(event.target, vhost, name, "to-queue");
      });
      root.querySelector("#purge").addEventListener("click", () => purge(vhost, name));
      root.querySelector("#delete").addEventListener("click", () => removeQueue(vhost, name));
    },
    async refresh(root) {
      const q = await get(path);
      series.add(q);
      renderChart(root.querySelector("#chart"), series, ["Ready", "Unacked"]);
      root.querySelector("#details").innerHTML = [
        ["Type", esc(q.type)], ["Features", badges(q) || '<span class="muted">none</span>'], ["State", stateCell(q.state)],
        ...replicated(q),
        ["Ready", num(q.messages_ready)], ["Unacked", num(q.messages_unacknowledged)], ["Total", num(q.messages)],
        ["Message bytes", bytes(q.message_bytes)], ["Consumers", num(q.consumers)],
        ["Incoming", rate(q.message_stats, "publish")], ["Deliver / get", rate(q.message_stats, "deliver_get")],
        ...(q.type === "stream" ? [["Segments", num(q.segments)], ["Committed offset", q.committed_offset ?? '<span class="muted">none</span>'],
          ["First timestamp", q.first_timestamp ? esc(new Date(q.first_timestamp).toISOString()) : '<span class="muted">none</span>']] : []),
        ["Arguments", Object.keys(q.arguments).length ? `<span class="mono">${esc(JSON.stringify(q.arguments))}</span>` : '<span class="muted">none</span>'],
      ].map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("");
      this.consumers.render(q.consumer_details || []);
      this.bindings.render(await get(`${path}/bindings`));
    },
  };
}

// What a quorum queue adds: its leader and members (one node here) and its delivery limit.
function replicated(q) {
  if (!q.members) return [];
  const rows = [["Leader", esc(q.leader)], ["Members", esc(q.members.join(", "))], ["Online", esc(q.online.join(", "))]];
  if (q.delivery_limit !== undefined) rows.push(["Delivery limit", q.delivery_limit < 0 ? "none" : num(q.delivery_limit)]);
  if (q.messages_dlx) rows.push(["Dead letters held", num(q.messages_dlx)]);
  return rows;
}

async function purge(vhost, name) {
  if (!confirm(`Purge all ready messages of queue ${name}?`)) return;
  try {
    await api("DELETE", `/queues/${seg(vhost)}/${seg(name)}/contents`);
    notify(`Queue ${name} purged`, "info");
  } catch (error) {
    notify(`Purge failed: ${error.message}`);
  }
}

async function removeQueue(vhost, name) {
  if (!confirm(`Delete queue ${name}?`)) return;
  try {
    await api("DELETE", `/queues/${seg(vhost)}/${seg(name)}`);
    notify(`Queue ${name} deleted`, "info");
    location.hash = "#/queues";
  } catch (error) {
    notify(`Delete failed: ${error.message}`);
  }
}
