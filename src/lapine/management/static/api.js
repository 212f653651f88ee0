// The management HTTP API, as the UI uses it: basic auth from the login form, JSON in and out.

const TOKEN_KEY = "lapine.auth";

export function setCredentials(username, password) {
  sessionStorage.setItem(TOKEN_KEY, btoa(unescape(encodeURIComponent(`${username}:${password}`))));
}

export function clearCredentials() {
  sessionStorage.removeItem(TOKEN_KEY);
}

export function hasCredentials() {
  return sessionStorage.getItem(TOKEN_KEY) !== null;
}

export class ApiError extends Error {
  constructor(status, reason) {
    super(reason);
    this.status = status;
  }
}

// Called when the API says the login is no longer good (set by app.js).
export const hooks = { unauthorised: () => {} };

export async function api(method, path, body, extraHeaders = {}) {
  const headers = {
    ...extraHeaders,
    Authorization: `Basic ${sessionStorage.getItem(TOKEN_KEY) || ""}`,
    // Keeps the browser from showing its own login box on a 401.
    "X-Requested-With": "XMLHttpRequest",
  };
  const options = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(`/api${path}`, options);
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const reason = data && data.reason !== undefined ? data.reason : response.statusText;
    if (response.status === 401 && data && data.reason === "Login failed") hooks.unauthorised();
    throw new ApiError(response.status, typeof reason === "string" ? reason : JSON.stringify(reason));
  }
  return data;
}

export const get = (path) => api("GET", path);

// One path segment: "/" (the default vhost) becomes %2F.
export const seg = (name) => encodeURIComponent(name);
