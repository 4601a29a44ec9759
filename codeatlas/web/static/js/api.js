// The API client: the access token lives in this module's memory only; the refresh token is
// an HttpOnly cookie the server sets, so a reload signs back in through /auth/session/refresh.

const BASE = "/api/v1";
let accessToken = null;
let refreshTimer = null;
let refreshing = null;
const listeners = new Set();

// Who is signed in (GET /auth/me), shared by the views.
export const state = { user: null };

export class ApiError extends Error {
  constructor(status, body, headers) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.error_code) || "HTTP_" + status;
    this.details = body ? body.details : null;
    const retry = headers ? Number(headers.get("Retry-After")) : NaN;
    this.retryAfter = Number.isFinite(retry) ? retry : null;
  }
}

export function onAuthChange(fn) { listeners.add(fn); }
export function getToken() { return accessToken; }

function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)ca_csrf=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

function setSession(data) {
  accessToken = data ? data.access_token : null;
  clearTimeout(refreshTimer);
  if (data) {
    // renew a minute before expiry (or at 80% of a short lifetime)
    const ms = Math.max(5, Math.min(data.expires_in - 60, data.expires_in * 0.8)) * 1000;
    refreshTimer = setTimeout(() => refresh().catch(() => {}), ms);
  }
  listeners.forEach((fn) => fn(Boolean(accessToken)));
}

async function raw(method, path, { body, form, auth = true, headers = {} } = {}) {
  const h = { Accept: "application/json", ...headers };
  if (auth && accessToken) h.Authorization = "Bearer " + accessToken;
  let payload;
  if (form) payload = form;
  else if (body !== undefined) { h["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
  // referrerPolicy same-origin: under a no-referrer page policy a POST would carry
  // "Origin: null", and the session endpoints check the Origin.
  const res = await fetch(BASE + path, {
    method, headers: h, body: payload, credentials: "same-origin", referrerPolicy: "same-origin",
  });
  let data = null;
  const type = res.headers.get("Content-Type") || "";
  if (res.status !== 204 && type.includes("application/json")) data = await res.json();
  if (!res.ok) throw new ApiError(res.status, data, res.headers);
  return data;
}

export async function api(method, path, opts = {}) {
  try {
    return await raw(method, path, opts);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401 && accessToken && opts.auth !== false
        && (err.code === "TOKEN_EXPIRED" || err.code === "TOKEN_INVALID")) {
      await refresh();
      return raw(method, path, opts);
    }
    throw err;
  }
}

export async function login(email, password) {
  setSession(await raw("POST", "/auth/session", { body: { email, password }, auth: false }));
}

// One refresh at a time: a rotated refresh token presented twice revokes the whole login.
export function refresh() {
  if (!refreshing) {
    refreshing = (async () => {
      try {
        if (!csrfToken()) throw new ApiError(401, { error_code: "SESSION_MISSING" });
        setSession(await raw("POST", "/auth/session/refresh",
          { auth: false, headers: { "X-CSRF-Token": csrfToken() } }));
      } catch (err) {
        setSession(null);
        throw err;
      } finally {
        refreshing = null;
      }
    })();
  }
  return refreshing;
}

export async function logout() {
  try {
    await raw("DELETE", "/auth/session", { auth: false, headers: { "X-CSRF-Token": csrfToken() } });
  } finally {
    setSession(null);
  }
}

export async function changePassword(current, next) {
  setSession(await api("POST", "/auth/session/password", {
    body: { current_password: current, new_password: next },
    headers: { "X-CSRF-Token": csrfToken() },
  }));
}

// Uploads go through XMLHttpRequest: fetch() reports no upload progress.
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", BASE + path);
    if (accessToken) xhr.setRequestHeader("Authorization", "Bearer " + accessToken);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); });
    xhr.addEventListener("load", () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch { data = null; }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data);
      else reject(new ApiError(xhr.status, data, { get: (n) => xhr.getResponseHeader(n) }));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, { error_code: "NETWORK", message: "Network error" })));
    xhr.send(form);
  });
}
