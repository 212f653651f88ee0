// Admin > Policies: the policies of the visible virtual hosts, a form to add or update one, and
// delete. Policymakers and administrators only, as in RabbitMQ.

import { api, get, seg } from "./api.js";
import { adminTabs } from "./page-admin.js";
import { Table, esc, formValues, notify, num, parseArguments, vhostOptions } from "./ui.js";

const APPLY_TO = { all: "Exchanges and queues", queues: "Queues", classic_queues: "Classic queues", quorum_queues: "Quorum queues", exchanges: "Exchanges" };

// The definition keys Lapine knows, offered as shortcuts under the definition box.
const KEYS = {
  Queues: ["max-length", "max-length-bytes", "overflow", "message-ttl", "expires", "dead-letter-exchange",
    "dead-letter-routing-key", "queue-mode", "consumer-timeout", "delivery-limit"],
  Exchanges: ["alternate-exchange"],
};

export const policies = {
  mount(root, ctx) {
    this.root = root;
    this.ctx = ctx;
    if (!ctx.tags.includes("administrator") && !ctx.tags.includes("policymaker")) {
      root.innerHTML = `<h1>Admin</h1>${adminTabs("policies")}
        <section class="card"><p class="muted">Only policymakers and administrators manage policies.</p></section>`;
      this.disabled = true;
      return;
    }
    this.disabled = false;
    root.innerHTML = `
      <h1>Admin</h1>${adminTabs("policies")}
      <div class="stack" id="policies-page">
        <section class="card">
          <div class="inline" style="margin-bottom:12px"><h2 style="margin:0">Policies <small class="muted" id="count"></small></h2>
            <input class="filter" id="filter" placeholder="Filter by name or pattern"></div>
          <div id="policies"></div>
        </section>
        <section class="card"><details id="policy-form"><summary>Add or update a policy</summary>
          <form class="form" id="add-policy">
            <label>Virtual host</label><select name="vhost" id="policy-vhost">${vhostOptions(ctx.vhosts, ctx.vhost || "/")}</select>
            <label>Name</label><input name="name" required>
            <label>Pattern</label><input name="pattern" required class="mono" placeholder="^orders\\.">
            <label>Apply to</label><select name="apply-to">${Object.entries(APPLY_TO).map(([v, t]) => `<option value="${v}">${t}</option>`).join("")}</select>
            <label>Priority</label><input name="priority" type="number" step="1" value="0">
            <label>Definition</label><textarea name="definition" required placeholder="max-length=1000&#10;overflow=reject-publish"></textarea>
            <span></span><div class="hint">One <span class="mono">key=value</span> a line; numbers and true/false are typed.
              ${Object.entries(KEYS).map(([group, keys]) => `<div class="keys"><span class="muted">${group}:</span> ${keys.map((k) => `<button type="button" class="chip" data-key="${k}">${k}</button>`).join("")}</div>`).join("")}</div>
            <div class="actions"><button class="primary" type="submit">Save policy</button></div>
          </form></details></section>
      </div>`;
    this.table = new Table(root.querySelector("#policies"), [
      { title: "Virtual host", value: (p) => esc(p.vhost) },
      { title: "Name", value: (p) => `<strong>${esc(p.name)}</strong>`, sort: (p) => p.name },
      { title: "Pattern", value: (p) => `<span class="mono">${esc(p.pattern)}</span>`, sort: (p) => p.pattern },
      { title: "Apply to", value: (p) => esc(APPLY_TO[p["apply-to"]] || p["apply-to"]), sort: (p) => p["apply-to"] },
      { title: "Definition", value: (p) => definitionCell(p.definition), sort: (p) => JSON.stringify(p.definition) },
      { title: "Priority", value: (p) => num(p.priority), sort: (p) => p.priority, num: true },
      {
        title: "",
        value: (p) => `<div class="row-actions">
          <button class="small" data-edit-policy="${esc(key(p))}">Edit</button>
          <button class="small danger" data-delete-policy="${esc(key(p))}">Delete</button></div>`,
        sort: () => 0,
      },
    ], { empty: "No policies", rowKey: key });
    this.table.sortIndex = 1;
    this.rows = [];
    // Listeners go on the page's own element: it goes away with the page, and they with it.
    const page = root.querySelector("#policies-page");
    page.addEventListener("click", (event) => this.click(event.target));
    page.querySelector("#add-policy").addEventListener("submit", (event) => {
      event.preventDefault();
      this.save(event.target);
    });
    page.querySelector("#filter").addEventListener("input", () => this.draw());
  },
  async refresh(root, ctx) {
    if (this.disabled) return;
    this.rows = await get(ctx.vhost ? `/policies/${seg(ctx.vhost)}` : "/policies");
    this.draw();
    const select = root.querySelector("#policy-vhost");
    select.innerHTML = vhostOptions(ctx.vhosts, select.value || ctx.vhost || "/");
  },
  draw() {
    const needle = this.root.querySelector("#filter").value.toLowerCase();
    const rows = this.rows.filter((p) => p.name.toLowerCase().includes(needle) || p.pattern.toLowerCase().includes(needle));
    this.root.querySelector("#count").textContent = `(${rows.length})`;
    this.table.render(rows);
  },
  async save(form) {
    const v = formValues(form);
    let body;
    try {
      body = { pattern: v.pattern, "apply-to": v["apply-to"], priority: Number(v.priority || 0), definition: parseDefinition(v.definition) };
    } catch (error) {
      return notify(error.message);
    }
    try {
      await api("PUT", `/policies/${seg(v.vhost)}/${seg(v.name)}`, body);
      notify(`Policy ${v.name} saved`, "info");
      form.reset();
      form.querySelector("select[name=vhost]").value = v.vhost;
      await this.reload();
    } catch (error) {
      notify(`Could not save policy: ${error.message}`);
    }
  },
  async click(target) {
    const data = target.dataset || {};
    if (data.key) return addKey(this.root.querySelector("#add-policy textarea[name=definition]"), data.key);
    const policy = this.rows.find((p) => key(p) === (data.editPolicy || data.deletePolicy));
    if (!policy) return;
    if (data.editPolicy) return this.edit(policy);
    if (!confirm(`Delete policy ${policy.name} of virtual host ${policy.vhost}?`)) return;
    try {
      await api("DELETE", `/policies/${seg(policy.vhost)}/${seg(policy.name)}`);
      notify(`Policy ${policy.name} deleted`, "info");
      await this.reload();
    } catch (error) {
      notify(`Could not delete policy: ${error.message}`);
    }
  },
  edit(policy) {
    const form = this.root.querySelector("#add-policy");
    const select = form.querySelector("select[name=vhost]");
    select.innerHTML = vhostOptions(this.ctx.vhosts, policy.vhost);
    const field = (name) => form.elements.namedItem(name);
    field("name").value = policy.name;
    field("pattern").value = policy.pattern;
    field("apply-to").value = policy["apply-to"];
    field("priority").value = policy.priority;
    field("definition").value = Object.entries(policy.definition).map(([k, value]) => `${k}=${typeof value === "object" ? JSON.stringify(value) : value}`).join("\n");
    const details = this.root.querySelector("#policy-form");
    details.open = true;
    details.scrollIntoView({ behavior: "smooth", block: "start" });
  },
  async reload() {
    if (this.root.querySelector("#policies-page")) await this.refresh(this.root, this.ctx);
  },
};

// A row's identity: vhost and name (either may hold any character).
const key = (p) => JSON.stringify([p.vhost, p.name]);

function definitionCell(definition) {
  const pairs = Object.entries(definition || {});
  if (!pairs.length) return '<span class="muted">none</span>';
  const value = (v) => esc(typeof v === "object" ? JSON.stringify(v) : v);
  return `<dl class="kv tight">${pairs.map(([k, v]) => `<dt class="mono">${esc(k)}</dt><dd class="mono">${value(v)}</dd>`).join("")}</dl>`;
}

// key=value lines typed as the other forms type them; decimals and JSON lists ([...]) as well.
function parseDefinition(text) {
  const out = parseArguments(text);
  for (const [k, v] of Object.entries(out)) {
    if (typeof v !== "string") continue;
    if (/^-?\d+\.\d+$/.test(v)) out[k] = Number(v);
    else if (/^\[.*\]$/.test(v)) {
      try {
        out[k] = JSON.parse(v);
      } catch {
        // Not JSON after all: keep the text.
      }
    }
  }
  if (!Object.keys(out).length) throw new Error("A policy needs a definition: at least one key=value line");
  return out;
}

function addKey(textarea, name) {
  const lines = textarea.value.split("\n").filter((line) => line.trim());
  if (!lines.some((line) => line.trim().startsWith(`${name}=`))) lines.push(`${name}=`);
  textarea.value = lines.join("\n");
  textarea.focus();
  textarea.setSelectionRange(textarea.value.length, textarea.value.length);
}
