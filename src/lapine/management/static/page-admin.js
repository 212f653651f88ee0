// Admin: users (with tags), virtual hosts, and permissions (administrators only); policies are on
// their own tab (page-policies.js).

import { api, get, seg } from "./api.js";
import { Table, esc, formValues, notify, num, vhostOptions } from "./ui.js";

// The tabs of the Admin section, as in RabbitMQ's Admin page.
export function adminTabs(current) {
  const tabs = [["users", "#/admin", "Users, virtual hosts and permissions"], ["policies", "#/admin/policies", "Policies"]];
  return `<nav class="subnav">${tabs.map(([id, href, title]) => `<a href="${href}"${id === current ? ' class="active"' : ""}>${title}</a>`).join("")}</nav>`;
}

export const admin = {
  mount(root, ctx) {
    if (!ctx.tags.includes("administrator")) {
      root.innerHTML = `<h1>Admin</h1>${adminTabs("users")}<section class="card"><p class="muted">Only administrators manage users, virtual hosts and permissions.</p></section>`;
      this.disabled = true;
      return;
    }
    this.disabled = false;
    root.innerHTML = `
      <h1>Admin</h1>${adminTabs("users")}
      <div class="stack">
        <section class="card"><h2>Users</h2><div id="users"></div>
          <details style="margin-top:14px"><summary>Add or update a user</summary>
          <form class="form" id="add-user">
            <label>Username</label><input name="name" required>
            <label>Password</label><input name="password" type="password" autocomplete="new-password">
            <label>Tags</label><input name="tags" placeholder="administrator, monitoring, policymaker, management">
            <div class="actions"><button class="primary" type="submit">Save user</button></div>
          </form></details></section>
        <section class="card"><h2>Virtual hosts</h2><div id="vhosts"></div>
          <details style="margin-top:14px"><summary>Add a virtual host</summary>
          <form class="form" id="add-vhost">
            <label>Name</label><input name="name" required>
            <label>Description</label><input name="description">
            <label>Tags</label><input name="tags" placeholder="comma-separated">
            <div class="actions"><button class="primary" type="submit">Add virtual host</button></div>
          </form></details></section>
        <section class="card"><h2>Permissions</h2><div id="permissions"></div>
          <details style="margin-top:14px"><summary>Set permissions</summary>
          <form class="form" id="set-permission">
            <label>User</label><select name="user" id="perm-user"></select>
            <label>Virtual host</label><select name="vhost" id="perm-vhost">${vhostOptions(ctx.vhosts, "/")}</select>
            <label>Configure regexp</label><input name="configure" value=".*">
            <label>Write regexp</label><input name="write" value=".*">
            <label>Read regexp</label><input name="read" value=".*">
            <div class="actions"><button class="primary" type="submit">Set permission</button></div>
          </form></details></section>
      </div>`;
    this.users = new Table(root.querySelector("#users"), [
      { title: "Name", value: (u) => esc(u.name) },
      { title: "Tags", value: (u) => u.tags.map((t) => `<span class="badge on">${esc(t)}</span>`).join("") || '<span class="muted">none</span>', sort: (u) => u.tags.join() },
      { title: "Can access virtual hosts", value: (u) => esc((this.access[u.name] || []).join(", ")) || '<span class="muted">none</span>', sort: () => 0 },
      { title: "Has password", value: (u) => (u.password_hash ? "yes" : "no") },
      { title: "", value: (u) => `<button class="small danger" data-delete-user="${esc(u.name)}">Delete</button>`, sort: () => 0 },
    ], { empty: "No users" });
    this.vhosts = new Table(root.querySelector("#vhosts"), [
      { title: "Name", value: (v) => esc(v.name) },
      { title: "Description", value: (v) => esc(v.description) },
      { title: "Ready", value: (v) => num(v.messages_ready), sort: (v) => v.messages_ready, num: true },
      { title: "Unacked", value: (v) => num(v.messages_unacknowledged), sort: (v) => v.messages_unacknowledged, num: true },
      { title: "Total", value: (v) => num(v.messages), sort: (v) => v.messages, num: true },
      { title: "", value: (v) => `<button class="small danger" data-delete-vhost="${esc(v.name)}">Delete</button>`, sort: () => 0 },
    ], { empty: "No virtual hosts" });
    this.permissions = new Table(root.querySelector("#permissions"), [
      { title: "User", value: (p) => esc(p.user) },
      { title: "Virtual host", value: (p) => esc(p.vhost) },
      { title: "Configure", value: (p) => `<span class="mono">${esc(p.configure)}</span>` },
      { title: "Write", value: (p) => `<span class="mono">${esc(p.write)}</span>` },
      { title: "Read", value: (p) => `<span class="mono">${esc(p.read)}</span>` },
      { title: "", value: (p) => `<button class="small danger" data-clear="${esc(`${seg(p.vhost)}/${seg(p.user)}`)}">Clear</button>`, sort: () => 0 },
    ], { empty: "No permissions" });
    this.access = {};
    root.querySelector("#add-user").addEventListener("submit", (e) => submit(e, saveUser));
    root.querySelector("#add-vhost").addEventListener("submit", (e) => submit(e, saveVhost));
    root.querySelector("#set-permission").addEventListener("submit", (e) => submit(e, savePermission));
    root.addEventListener("click", (event) => act(event.target.dataset || {}));
  },
  async refresh(root) {
    if (this.disabled) return;
    const [users, vhosts, permissions] = await Promise.all([get("/users"), get("/vhosts"), get("/permissions")]);
    this.access = {};
    for (const p of permissions) (this.access[p.user] = this.access[p.user] || []).push(p.vhost);
    this.users.render(users);
    this.vhosts.render(vhosts);
    this.permissions.render(permissions);
    const userSelect = root.querySelector("#perm-user");
    const chosen = userSelect.value;
    userSelect.innerHTML = users.map((u) => `<option${u.name === chosen ? " selected" : ""}>${esc(u.name)}</option>`).join("");
    const vhostSelect = root.querySelector("#perm-vhost");
    vhostSelect.innerHTML = vhostOptions(vhosts, vhostSelect.value || "/");
  },
};

async function submit(event, save) {
  event.preventDefault();
  try {
    await save(formValues(event.target));
    event.target.reset();
  } catch (error) {
    notify(error.message);
  }
}

async function saveUser(v) {
  const body = { tags: v.tags || "" };
  if (v.password) body.password = v.password;
  await api("PUT", `/users/${seg(v.name)}`, body);
  notify(`User ${v.name} saved`, "info");
}

async function saveVhost(v) {
  await api("PUT", `/vhosts/${seg(v.name)}`, { description: v.description || "", tags: v.tags || "" });
  notify(`Virtual host ${v.name} added`, "info");
}

async function savePermission(v) {
  await api("PUT", `/permissions/${seg(v.vhost)}/${seg(v.user)}`, { configure: v.configure, write: v.write, read: v.read });
  notify(`Permissions of ${v.user} on ${v.vhost} set`, "info");
}

async function act(data) {
  try {
    if (data.deleteUser && confirm(`Delete user ${data.deleteUser}? Their connections will be closed.`)) {
      await api("DELETE", `/users/${seg(data.deleteUser)}`);
      notify(`User ${data.deleteUser} deleted`, "info");
    } else if (data.deleteVhost && confirm(`Delete virtual host ${data.deleteVhost} and everything in it?`)) {
      await api("DELETE", `/vhosts/${seg(data.deleteVhost)}`);
      notify(`Virtual host ${data.deleteVhost} deleted`, "info");
    } else if (data.clear) {
      await api("DELETE", `/permissions/${data.clear}`);
      notify("Permissions cleared", "info");
    }
  } catch (error) {
    notify(error.message);
  }
}
