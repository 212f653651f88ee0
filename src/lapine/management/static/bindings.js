// The bindings table and "add binding" form that queue and exchange pages share.

import { api, seg } from "./api.js";
import { Table, esc, formValues, notify, parseArguments } from "./ui.js";

export function bindingForm(direction) {
  const other = direction === "to-queue" ? "From exchange" : "To";
  const kind = direction === "from-exchange"
    ? '<select name="kind"><option value="q">queue</option><option value="e">exchange</option></select>'
    : "";
  return `
    <form class="form" data-form="bind">
      <label>${other}</label><div class="inline">${kind}<input name="other" required placeholder="name"></div>
      <label>Routing key</label><input name="routing_key">
      <label>Arguments</label><textarea name="arguments" placeholder="key=value, one per line"></textarea>
      <div class="actions"><button class="primary" type="submit">Bind</button></div>
    </form>`;
}

// For a queue page, the queue is the destination; for an exchange page, the exchange is the source.
export async function addBinding(form, vhost, self, direction) {
  const values = formValues(form);
  let body;
  try {
    body = { routing_key: values.routing_key || "", arguments: parseArguments(values.arguments) };
  } catch (error) {
    return notify(error.message);
  }
  const path = direction === "to-queue"
    ? `/bindings/${seg(vhost)}/e/${seg(values.other)}/q/${seg(self)}`
    : `/bindings/${seg(vhost)}/e/${seg(self)}/${values.kind}/${seg(values.other)}`;
  try {
    await api("POST", path, body);
    notify("Binding added", "info");
    form.reset();
  } catch (error) {
    notify(`Bind failed: ${error.message}`);
  }
}

export function bindingTable(container, direction) {
  const columns = [
    direction === "to-queue"
      ? { title: "From", value: (b) => (b.source ? `<a href="#/exchanges/${seg(b.vhost)}/${seg(b.source)}">${esc(b.source)}</a>` : "(default exchange)") }
      : { title: "To", value: (b) => `${esc(b.destination)} <span class="badge">${esc(b.destination_type)}</span>` },
    { title: "Routing key", value: (b) => `<span class="mono">${esc(b.routing_key)}</span>` },
    { title: "Arguments", value: (b) => (Object.keys(b.arguments).length ? `<span class="mono">${esc(JSON.stringify(b.arguments))}</span>` : "") },
    { title: "", value: (b) => (b.source ? `<button class="small danger" data-unbind="${esc(bindingPath(b))}">Unbind</button>` : ""), sort: () => 0 },
  ];
  const table = new Table(container, columns, { empty: "No bindings" });
  container.addEventListener("click", async (event) => {
    const path = event.target.dataset && event.target.dataset.unbind;
    if (!path) return;
    try {
      await api("DELETE", path);
      notify("Binding removed", "info");
    } catch (error) {
      notify(`Unbind failed: ${error.message}`);
    }
  });
  return table;
}

function bindingPath(b) {
  const kind = b.destination_type === "queue" ? "q" : "e";
  return `/bindings/${seg(b.vhost)}/e/${seg(b.source)}/${kind}/${seg(b.destination)}/${seg(b.properties_key)}`;
}
