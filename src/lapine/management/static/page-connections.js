// Connections and channels: who is connected, with what, and closing a connection.

import { api, get, seg } from "./api.js";
import { Table, bytes, esc, notify, num, rate, stateCell } from "./ui.js";

export const connections = {
  mount(root) {
    root.innerHTML = `<h1>Connections</h1><section class="card"><div id="list"></div></section>`;
    this.table = new Table(root.querySelector("#list"), [
      { title: "Name", value: (c) => `${esc(c.user_provided_name || c.name)}<div class="muted mono">${esc(c.name)}</div>`, sort: (c) => c.name },
      { title: "Virtual host", value: (c) => esc(c.vhost) },
      { title: "User", value: (c) => esc(c.user) },
      { title: "Protocol", value: (c) => esc(c.protocol) },
      { title: "State", value: (c) => stateCell(c.state) },
      { title: "Channels", value: (c) => num(c.channels), sort: (c) => c.channels, num: true },
      { title: "From client", value: (c) => `${bytes(c.recv_oct_details.rate)}/s`, sort: (c) => c.recv_oct_details.rate, num: true },
      { title: "To client", value: (c) => `${bytes(c.send_oct_details.rate)}/s`, sort: (c) => c.send_oct_details.rate, num: true },
      { title: "", value: (c) => `<button class="small danger" data-close="${esc(c.name)}">Close</button>`, sort: () => 0 },
    ], { empty: "No connections" });
    root.addEventListener("click", async (event) => {
      const name = event.target.dataset && event.target.dataset.close;
      if (!name) return;
      const reason = prompt(`Close connection ${name}?\nReason sent to the client:`, "Closed via management plugin");
      if (reason === null) return;
      try {
        await api("DELETE", `/connections/${seg(name)}`, undefined, { "X-Reason": reason });
        notify(`Connection ${name} closed`, "info");
      } catch (error) {
        notify(`Could not close: ${error.message}`);
      }
    });
  },
  async refresh(root, ctx) {
    const rows = await get("/connections");
    this.table.render(rows.filter((c) => !ctx.vhost || c.vhost === ctx.vhost));
  },
};

export const channels = {
  mount(root) {
    root.innerHTML = `<h1>Channels</h1><section class="card"><div id="list"></div></section>`;
    this.table = new Table(root.querySelector("#list"), [
      { title: "Channel", value: (c) => esc(c.name) },
      { title: "Virtual host", value: (c) => esc(c.vhost) },
      { title: "User", value: (c) => esc(c.user) },
      { title: "Mode", value: (c) => (c.confirm ? '<span class="badge on">confirm</span>' : "") + (c.transactional ? '<span class="badge on">tx</span>' : ""), sort: (c) => `${c.confirm}${c.transactional}` },
      { title: "State", value: (c) => stateCell(c.state) },
      { title: "Consumers", value: (c) => num(c.consumer_count), sort: (c) => c.consumer_count, num: true },
      { title: "Prefetch", value: (c) => num(c.prefetch_count), sort: (c) => c.prefetch_count, num: true },
      { title: "Unacked", value: (c) => num(c.messages_unacknowledged), sort: (c) => c.messages_unacknowledged, num: true },
      { title: "Publish", value: (c) => rate(c.message_stats, "publish"), sort: (c) => statRate(c, "publish"), num: true },
      { title: "Deliver / get", value: (c) => rate(c.message_stats, "deliver_get"), sort: (c) => statRate(c, "deliver_get"), num: true },
      { title: "Ack", value: (c) => rate(c.message_stats, "ack"), sort: (c) => statRate(c, "ack"), num: true },
    ], { empty: "No channels" });
  },
  async refresh(root, ctx) {
    const rows = await get("/channels");
    this.table.render(rows.filter((c) => !ctx.vhost || c.vhost === ctx.vhost));
  },
};

function statRate(item, name) {
  const details = item.message_stats && item.message_stats[`${name}_details`];
  return details ? details.rate : 0;
}
