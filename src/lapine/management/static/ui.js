// DOM helpers shared by the pages: escaping, tables that sort, forms, and notices.

export function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

export function num(value) {
  if (value === undefined || value === null) return "";
  return Number(value).toLocaleString("en-US");
}

export function rate(stats, name) {
  const details = stats && stats[`${name}_details`];
  return details ? `${details.rate.toFixed(1)}/s` : "0.0/s";
}

export function bytes(value) {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let n = Number(value) || 0;
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function vhostLabel(name) {
  return name === "/" ? "/" : name;
}

export function badges(item) {
  const out = [];
  if (item.durable) out.push('<span class="badge on" title="durable">D</span>');
  if (item.auto_delete) out.push('<span class="badge" title="auto-delete">AD</span>');
  if (item.exclusive) out.push('<span class="badge" title="exclusive">Excl</span>');
  if (item.internal) out.push('<span class="badge" title="internal">I</span>');
  if (item.arguments && Object.keys(item.arguments).length) {
    out.push(`<span class="badge" title="${esc(JSON.stringify(item.arguments))}">Args</span>`);
  }
  return out.join("");
}

export function stateCell(state) {
  return `<span class="${state === "running" ? "state-running" : "state-other"}">${esc(state)}</span>`;
}

// A table whose rows come from a list of objects; clicking a header sorts by it.
export class Table {
  constructor(container, columns, { empty = "Nothing to show", rowKey = null } = {}) {
    this.container = container;
    this.columns = columns; // [{title, value(row) -> html, sort(row) -> comparable, num}]
    this.empty = empty;
    this.rowKey = rowKey;
    this.sortIndex = 0;
    this.reverse = false;
    this.rows = [];
    container.addEventListener("click", (event) => {
      const th = event.target.closest("th[data-index]");
      if (!th) return;
      const index = Number(th.dataset.index);
      this.reverse = this.sortIndex === index ? !this.reverse : false;
      this.sortIndex = index;
      this.render(this.rows);
    });
  }

  render(rows) {
    this.rows = rows;
    const column = this.columns[this.sortIndex];
    const key = column.sort || ((row) => String(column.value(row)));
    const sorted = [...rows].sort((a, b) => {
      const ka = key(a);
      const kb = key(b);
      const order = ka < kb ? -1 : ka > kb ? 1 : 0;
      return this.reverse ? -order : order;
    });
    const head = this.columns
      .map((c, i) => `<th data-index="${i}" class="${c.num ? "num" : ""}">${esc(c.title)}${i === this.sortIndex ? (this.reverse ? " ▾" : " ▴") : ""}</th>`)
      .join("");
    const body = sorted.length
      ? sorted
          .map((row) => {
            const key = this.rowKey ? ` data-key="${esc(this.rowKey(row))}"` : "";
            return `<tr${key}>${this.columns.map((c) => `<td class="${c.num ? "num" : ""}">${c.value(row)}</td>`).join("")}</tr>`;
          })
          .join("")
      : `<tr><td class="empty" colspan="${this.columns.length}">${esc(this.empty)}</td></tr>`;
    this.container.innerHTML = `<div class="table-wrap"><table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table></div>`;
  }
}

export function notify(message, kind = "error") {
  const banner = document.getElementById("banner");
  banner.textContent = message;
  banner.className = `banner ${kind === "info" ? "info" : ""}`;
  clearTimeout(notify.timer);
  notify.timer = setTimeout(() => banner.classList.add("hidden"), 6000);
}

export function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}

// "key=value" lines (values that look like numbers or booleans are converted), for arguments and headers.
export function parseArguments(text) {
  const out = {};
  for (const line of String(text || "").split("\n")) {
    const trimmed = line.trim();
    if (!trimmed) continue;
    const at = trimmed.indexOf("=");
    if (at < 1) throw new Error(`"${trimmed}" is not key=value`);
    const key = trimmed.slice(0, at).trim();
    const raw = trimmed.slice(at + 1).trim();
    out[key] = /^-?\d+$/.test(raw) ? Number(raw) : raw === "true" ? true : raw === "false" ? false : raw;
  }
  return out;
}

export function vhostOptions(vhosts, selected) {
  return vhosts.map((v) => `<option value="${esc(v.name)}"${v.name === selected ? " selected" : ""}>${esc(v.name)}</option>`).join("");
}
