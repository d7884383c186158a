// The REST side of the dashboard: the session (a bearer token in sessionStorage, so it ends with
// the tab) and JSON calls with it. A 401 anywhere ends the session: the page asks to sign in again.

const TOKEN_KEY = "inventory.dashboard.token";
const USER_KEY = "inventory.dashboard.user";

export class Unauthorized extends Error {}

/** What the API answered when it was not a 2xx: status and the problem+json title/detail. */
export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
  }
}

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  get user() { return sessionStorage.getItem(USER_KEY) || ""; },
  save(token, user) {
    sessionStorage.setItem(TOKEN_KEY, token);
    sessionStorage.setItem(USER_KEY, user);
  },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(USER_KEY);
  },
  /** Whether the token's own expiry (the JWT's `exp`) has passed: no request needed to know. */
  expired() {
    const token = this.token;
    if (!token) return true;
    try {
      const payload = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
      return typeof payload.exp === "number" && payload.exp * 1000 <= Date.now();
    } catch {
      return false; // not ours to judge: the server will say 401
    }
  },
};

async function problemOf(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

/** POST /auth/token; keeps the token. Throws ApiError (401: wrong name or password). */
export async function signIn(username, password) {
  const response = await fetch("/auth/token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  const body = await response.json();
  session.save(body.access_token, `${username} (${body.role})`);
  return body;
}

/** GET a JSON document with the session's token. null for a 404 (an endpoint or an item that
 * is not there: the caller shows "no data"); Unauthorized for a 401. */
export async function getJson(path) {
  const response = await fetch(path, {
    headers: { Authorization: `Bearer ${session.token}`, Accept: "application/json" },
  });
  if (response.status === 401) throw new Unauthorized("signed out");
  if (response.status === 404) return null;
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  return response.json();
}
