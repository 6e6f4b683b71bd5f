// The REST API: JSON in and out. Failures are thrown as ApiError (handled by the callers, so
// an absent optional endpoint never logs a console error of its own).

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// The session's CSRF token, repeated on every write (the cookie alone is not enough).
let csrfToken = "";

async function call(method, path, body) {
  const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (method !== "GET") init.headers["X-CSRF-Token"] = csrfToken;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, `network error: ${err.message}`);
  }
  const data = await resp.json().catch(() => null);
  if (resp.status === 401) {
    window.location.assign("/login");  // the session ended (signed out, expired or revoked)
  }
  if (!resp.ok) {
    throw new ApiError(resp.status, data?.error?.message ?? `HTTP ${resp.status}`);
  }
  return data;
}

export const getJSON = (path) => call("GET", path);
export const postJSON = (path, body) => call("POST", path, body);

/** The signed-in key's name and role; keeps the CSRF token for later writes. */
export async function session() {
  const who = await getJSON("/api/v1/session");
  csrfToken = who.csrf_token;
  return who;
}

export async function signOut() {
  try {
    await call("DELETE", "/api/v1/session");
  } finally {
    window.location.assign("/login");
  }
}

/** A query string from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}
