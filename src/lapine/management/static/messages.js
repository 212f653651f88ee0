// The publish and get forms that queue and exchange pages share.

import { api, seg } from "./api.js";
import { esc, formValues, notify, parseArguments } from "./ui.js";

export function publishForm(withRoutingKey) {
  return `
    <form class="form" data-form="publish">
      ${withRoutingKey ? '<label>Routing key</label><input name="routing_key" placeholder="routing key">' : ""}
      <label>Delivery mode</label>
      <select name="delivery_mode"><option value="1">1 - Non-persistent</option><option value="2">2 - Persistent</option></select>
      <label>Headers</label><textarea name="headers" placeholder="key=value, one per line"></textarea>
      <label>Properties</label><textarea name="properties" placeholder="content_type=text/plain&#10;message_id=..."></textarea>
      <label>Payload</label><textarea name="payload" rows="4" placeholder="message body"></textarea>
      <div class="actions"><button class="primary" type="submit">Publish message</button><span class="muted" data-out="publish"></span></div>
    </form>`;
}

export async function publish(form, vhost, exchange, routingKey) {
  const values = formValues(form);
  let properties;
  try {
    properties = { ...parseArguments(values.properties), delivery_mode: Number(values.delivery_mode) };
    const headers = parseArguments(values.headers);
    if (Object.keys(headers).length) properties.headers = headers;
  } catch (error) {
    return notify(error.message);
  }
  const body = {
    routing_key: routingKey !== undefined ? routingKey : values.routing_key || "",
    properties,
    payload: values.payload || "",
    payload_encoding: "string",
  };
  const name = exchange === "" ? "amq.default" : exchange;
  try {
    const result = await api("POST", `/exchanges/${seg(vhost)}/${seg(name)}/publish`, body);
    const out = form.querySelector('[data-out="publish"]');
    out.textContent = result.routed ? "Message published." : "Message published, but not routed.";
    notify(out.textContent, result.routed ? "info" : "error");
  } catch (error) {
    notify(`Publish failed: ${error.message}`);
  }
}

export function getForm() {
  return `
    <form class="form" data-form="get">
      <label>Ack mode</label>
      <select name="ackmode">
        <option value="ack_requeue_true">Nack message requeue true</option>
        <option value="ack_requeue_false">Automatic ack</option>
        <option value="reject_requeue_true">Reject requeue true</option>
        <option value="reject_requeue_false">Reject requeue false</option>
      </select>
      <label>Encoding</label>
      <select name="encoding"><option value="auto">Auto string / base64</option><option value="base64">base64</option></select>
      <label>Messages</label><input name="count" type="number" min="1" value="1">
      <div class="actions"><button class="primary" type="submit">Get message(s)</button></div>
    </form>
    <div class="result" data-out="get"></div>`;
}

export async function getMessages(form, vhost, queue) {
  const values = formValues(form);
  const body = { count: Number(values.count) || 1, ackmode: values.ackmode, encoding: values.encoding, truncate: 50000 };
  const out = form.parentElement.querySelector('[data-out="get"]');
  try {
    const messages = await api("POST", `/queues/${seg(vhost)}/${seg(queue)}/get`, body);
    out.innerHTML = messages.length
      ? messages.map((m, i) => renderMessage(m, i + 1)).join("")
      : '<p class="muted">Queue is empty.</p>';
  } catch (error) {
    notify(`Get failed: ${error.message}`);
  }
}

function renderMessage(m, index) {
  const props = Array.isArray(m.properties) ? {} : m.properties;
  const propText = Object.entries(props).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ");
  return `<div class="message">
    <strong>Message ${index}</strong>
    <span class="muted"> · exchange "${esc(m.exchange)}" · routing key "${esc(m.routing_key)}" · ${m.redelivered ? "redelivered · " : ""}${m.payload_bytes} bytes · ${m.message_count} left in queue</span>
    ${propText ? `<div class="muted mono">${esc(propText)}</div>` : ""}
    <pre class="payload">${esc(m.payload)}</pre>
    <div class="muted">Encoding: ${esc(m.payload_encoding)}</div>
  </div>`;
}
