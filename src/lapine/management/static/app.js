// The UI's shell: login, the hash router, the vhost filter and the refresh timer.

import { clearCredentials, get, hasCredentials, hooks, setCredentials } from "./api.js";
import { admin } from "./page-admin.js";
import { channels, connections } from "./page-connections.js";
import { exchangeList, exchangePage } from "./page-exchanges.js";
import * as overview from "./page-overview.js";
import { policies } from "./page-policies.js";
import { queueList, queuePage } from "./page-queues.js";
import { esc, notify } from "./ui.js";

const REFRESH_KEY = "lapine.refresh";
const ctx = { user: "", tags: [], vhosts: [], vhost: "" };
let page = null;
let timer = null;

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const [tab, vhost, name] = parts;
  if (tab === "queues" && name !== undefined) return ["queues", queuePage(vhost, name)];
  if (tab === "exchanges" && name !== undefined) return ["exchanges", exchangePage(vhost, name)];
  if (tab === "admin" && vhost === "policies") return ["admin", policies];
  const pages = { connections, channels, exchanges: exchangeList, queues: queueList, admin };
  return pages[tab] ? [tab, pages[tab]] : ["overview", overview];
}

async function show() {
  const [tab, next] = route();
  for (const link of document.querySelectorAll("#nav a")) link.classList.toggle("active", link.dataset.tab === tab);
  page = next;
  // A notice belongs to the page it was raised on.
  document.getElementById("banner").classList.add("hidden");
  // A fresh element for each page: the listeners an earlier page put on it go away with it.
  const old = document.getElementById("page");
  const root = old.cloneNode(false);
  old.replaceWith(root);
  page.mount(root, ctx);
  await refresh();
}

async function refresh() {
  if (!page) return;
  const current = page;
  try {
    await loadVhosts();
    await current.refresh(document.getElementById("page"), ctx);
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    if (error.status !== 401 || hasCredentials()) notify(error.message);
  }
}

async function loadVhosts() {
  ctx.vhosts = await get("/vhosts");
  const select = document.getElementById("vhost-filter");
  const options = ['<option value="">All</option>', ...ctx.vhosts.map((v) => `<option value="${esc(v.name)}">${esc(v.name)}</option>`)];
  if (select.options.length !== options.length) {
    select.innerHTML = options.join("");
    select.value = ctx.vhost;
  }
}

function schedule() {
  clearInterval(timer);
  const every = Number(document.getElementById("refresh").value);
  localStorage.setItem(REFRESH_KEY, String(every));
  if (every > 0) timer = setInterval(refresh, every);
}

async function start() {
  let me;
  try {
    me = await get("/whoami");
  } catch (error) {
    return showLogin(error.status === 401 ? "Login failed" : error.message);
  }
  ctx.user = me.name;
  ctx.tags = me.tags;
  const overviewData = await get("/overview");
  document.getElementById("product").textContent = `${overviewData.product_name} ${overviewData.product_version} · compatible with RabbitMQ ${overviewData.rabbitmq_version}`;
  document.getElementById("whoami").textContent = me.name;
  document.getElementById("login").classList.add("hidden");
  document.getElementById("shell").classList.remove("hidden");
  await show();
  schedule();
}

function showLogin(message) {
  clearInterval(timer);
  page = null;
  document.getElementById("shell").classList.add("hidden");
  document.getElementById("login").classList.remove("hidden");
  const error = document.getElementById("login-error");
  error.textContent = message || "";
  error.classList.toggle("hidden", !message);
}

function logout(message) {
  clearCredentials();
  showLogin(message);
}

hooks.unauthorised = () => logout("Your session ended: please log in again.");

document.getElementById("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  setCredentials(form.get("username"), form.get("password"));
  start();
});
document.getElementById("logout").addEventListener("click", () => logout(""));
document.getElementById("refresh").addEventListener("change", schedule);
document.getElementById("vhost-filter").addEventListener("change", (event) => {
  ctx.vhost = event.target.value;
  show();
});
window.addEventListener("hashchange", () => hasCredentials() && show());

const saved = localStorage.getItem(REFRESH_KEY);
if (saved !== null) document.getElementById("refresh").value = saved;
if (hasCredentials()) start();
else showLogin("");
