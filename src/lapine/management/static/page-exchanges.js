// Exchanges: the list with its add form, and one exchange's page (bindings, publish, delete).

import { api, get, seg } from "./api.js";
import { addBinding, bindingForm, bindingTable } from "./bindings.js";
import { publish, publishForm } from "./messages.js";
import { Table, badges, esc, formValues, notify, parseArguments, rate, vhostOptions } from "./ui.js";

const label = (name) => name || "(AMQP default)";

export const exchangeList = {
  mount(root, ctx) {
    root.innerHTML = `
      <h1>Exchanges</h1>
      <section class="card">
        <div class="inline" style="margin-bottom:12px"><h2 style="margin:0">All exchanges <small class="muted" id="count"></small></h2>
          <input class="filter" id="filter" placeholder="Filter by name"></div>
        <div id="list"></div>
      </section>
      <section class="card"><details><summary>Add a new exchange</summary>
        <form class="form" id="add">
          <label>Virtual host</label><select name="vhost">${vhostOptions(ctx.vhosts, ctx.vhost || "/")}</select>
          <label>Name</label><input name="name" required>
          <label>Type</label><select name="type"><option>direct</option><option>fanout</option><option>headers</option><option>topic</option><option>x-delayed-message</option></select>
          <label>Durability</label><select name="durable"><option value="true">Durable</option><option value="false">Transient</option></select>
          <label>Auto delete</label><select name="auto_delete"><option value="false">No</option><option value="true">Yes</option></select>
          <label>Internal</label><select name="internal"><option value="false">No</option><option value="true">Yes</option></select>
          <label>Arguments</label><textarea name="arguments" placeholder="alternate-exchange=name"></textarea>
          <div class="actions"><button class="primary" type="submit">Add exchange</button></div>
        </form></details></section>`;
    this.table = new Table(root.querySelector("#list"), [
      { title: "Virtual host", value: (x) => esc(x.vhost) },
      { title: "Name", value: (x) => `<a href="#/exchanges/${seg(x.vhost)}/${seg(x.name || "amq.default")}">${esc(label(x.name))}</a>`, sort: (x) => x.name },
      { title: "Type", value: (x) => esc(x.type) },
      { title: "Features", value: (x) => badges(x), sort: (x) => String(x.durable) },
      { title: "Message rate in", value: (x) => rate(x.message_stats, "publish_in"), sort: (x) => r(x, "publish_in"), num: true },
      { title: "Message rate out", value: (x) => rate(x.message_stats, "publish_out"), sort: (x) => r(x, "publish_out"), num: true },
    ], { empty: "No exchanges" });
    this.table.sortIndex = 1;
    root.querySelector("#filter").addEventListener("input", () => this.draw(root));
    root.querySelector("#add").addEventListener("submit", (event) => {
      event.preventDefault();
      addExchange(event.target);
    });
  },
  async refresh(root, ctx) {
    this.rows = await get(ctx.vhost ? `/exchanges/${seg(ctx.vhost)}` : "/exchanges");
    this.draw(root);
  },
  draw(root) {
    const needle = root.querySelector("#filter").value.toLowerCase();
    const rows = (this.rows || []).filter((x) => label(x.name).toLowerCase().includes(needle));
    root.querySelector("#count").textContent = `(${rows.length})`;
    this.table.render(rows);
  },
};

function r(item, name) {
  const details = item.message_stats && item.message_stats[`${name}_details`];
  return details ? details.rate : 0;
}

async function addExchange(form) {
  const v = formValues(form);
  try {
    const body = {
      type: v.type, durable: v.durable === "true", auto_delete: v.auto_delete === "true",
      internal: v.internal === "true", arguments: parseArguments(v.arguments),
    };
    await api("PUT", `/exchanges/${seg(v.vhost)}/${seg(v.name)}`, body);
    notify(`Exchange ${v.name} added`, "info");
    form.reset();
  } catch (error) {
    notify(`Could not add exchange: ${error.message}`);
  }
}

export function exchangePage(vhost, pathName) {
  const name = pathName === "amq.default" ? "" : pathName;
  const path = `/exchanges/${seg(vhost)}/${seg(pathName)}`;
  return {
    mount(root) {
      root.innerHTML = `
        <h1>Exchange ${esc(label(name))} <small>in virtual host ${esc(vhost)}</small></h1>
        <section class="card"><h2>Details</h2><dl class="kv" id="details"></dl></section>
        <div class="stack">
          <section class="card"><h2>Bindings from this exchange</h2><div id="bindings"></div>
            ${name ? `<details style="margin-top:14px"><summary>Add binding from this exchange</summary>${bindingForm("from-exchange")}</details>` : ""}</section>
          <section class="card"><h2>Publish message</h2>${publishForm(true)}</section>
          ${name && !name.startsWith("amq.") ? '<section class="card"><h2>Delete this exchange</h2><button class="danger" id="delete">Delete</button></section>' : ""}
        </div>`;
      this.bindings = bindingTable(root.querySelector("#bindings"), "from-exchange");
      root.addEventListener("submit", (event) => {
        event.preventDefault();
        const kind = event.target.dataset.form;
        if (kind === "publish") publish(event.target, vhost, name);
        if (kind === "bind") addBinding(event.target, vhost, name, "from-exchange");
      });
      const del = root.querySelector("#delete");
      if (del) del.addEventListener("click", () => removeExchange(vhost, name));
    },
    async refresh(root) {
      const x = await get(path);
      root.querySelector("#details").innerHTML = [
        ["Type", esc(x.type)], ["Features", badges(x) || '<span class="muted">none</span>'],
        ["Message rate in", rate(x.message_stats, "publish_in")], ["Message rate out", rate(x.message_stats, "publish_out")],
        ["Arguments", Object.keys(x.arguments).length ? `<span class="mono">${esc(JSON.stringify(x.arguments))}</span>` : '<span class="muted">none</span>'],
        // x-delayed-message exchanges: the messages waiting for their x-delay.
        ...("messages_delayed" in x ? [["Messages delayed", `<span id="messages-delayed">${esc(String(x.messages_delayed))}</span>`]] : []),
      ].map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("");
      const rows = name ? await get(`${path}/bindings/source`) : [];
      this.bindings.render(rows);
    },
  };
}

async function removeExchange(vhost, name) {
  if (!confirm(`Delete exchange ${name}?`)) return;
  try {
    await api("DELETE", `/exchanges/${seg(vhost)}/${seg(name)}`);
    notify(`Exchange ${name} deleted`, "info");
    location.hash = "#/exchanges";
  } catch (error) {
    notify(`Delete failed: ${error.message}`);
  }
}
