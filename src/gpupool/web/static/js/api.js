// The /v1 API from the browser, with the signed-in user's token. Errors are RFC 9457 problem
// documents; a 401 anywhere means the token is gone or revoked: the app goes back to sign-in.
// A request the service does not answer (network error, or 502/503/504 from a proxy or a
// service without its database) raises "gpupool:offline"; the next answer "gpupool:online".
import { t as tr } from "./i18n.js";

const TOKEN_KEY = "gpupool.token";

export class ApiError extends Error {
  constructor(status, problem) {
    const detail = problem?.detail || problem?.title || `HTTP ${status}`;
    super(detail);
    this.status = status;
    this.problem = problem || {};
  }
  /** The message with each invalid field named (validation errors). */
  get explained() {
    const errs = (this.problem.errors || []).map((e) => `${e.field}: ${e.message}`);
    return errs.length ? `${this.message} (${errs.join("; ")})` : this.message;
  }
}

// The token is kept in localStorage, so a job opened in a new tab (Ctrl-click) is signed in
// too. The trade-off: it outlives the tab (until "Sign out", which clears it in every tab, or
// the token's expiry), and script on this origin could read it, as it could sessionStorage;
// the page's CSP allows no inline or foreign script and the DOM is built without innerHTML.
// A token left by an older version in this tab's sessionStorage is moved over once.
export const token = {
  get: () => {
    const old = sessionStorage.getItem(TOKEN_KEY);
    if (old) {
      localStorage.setItem(TOKEN_KEY, old);
      sessionStorage.removeItem(TOKEN_KEY);
    }
    return localStorage.getItem(TOKEN_KEY);
  },
  set: (v) => {
    sessionStorage.removeItem(TOKEN_KEY);
    localStorage.setItem(TOKEN_KEY, v);
  },
  clear: () => {
    sessionStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(TOKEN_KEY);
  },
};

export const TOKEN_STORAGE_KEY = TOKEN_KEY;
const UNAVAILABLE = new Set([502, 503, 504]);
let offline = false;
function connection(up) {
  if (up === !offline) return;
  offline = !up;
  window.dispatchEvent(new CustomEvent(up ? "gpupool:online" : "gpupool:offline"));
}
export const isOffline = () => offline;

function url(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === "") continue;
    q.set(k, String(v));
  }
  const qs = q.toString();
  return qs ? `${path}?${qs}` : path;
}

async function call(method, path, { params, body, headers, as = "json", auth } = {}) {
  const t = auth ?? token.get();
  const h = { Accept: as === "json" ? "application/json" : "*/*", ...(headers || {}) };
  if (t) h.Authorization = `Bearer ${t}`;
  if (body !== undefined) h["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(url(path, params), {
      method,
      headers: h,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (e) {
    connection(false);
    throw new ApiError(0, { detail: tr("api.no_answer", { error: e.message }) });
  }
  connection(!UNAVAILABLE.has(resp.status));
  if (!resp.ok) {
    let problem = null;
    try {
      problem = await resp.json();
    } catch {
      /* not a problem document */
    }
    const err = new ApiError(resp.status, problem);
    if (resp.status === 401 && auth === undefined) window.dispatchEvent(new CustomEvent("gpupool:unauthorized"));
    throw err;
  }
  if (as === "text") return resp.text();
  if (as === "blob") return resp.blob();
  if (resp.status === 204) return null;
  return resp.json();
}

export const api = {
  get: (path, params, opts) => call("GET", path, { ...opts, params }),
  post: (path, body, opts) => call("POST", path, { ...opts, body }),
  text: (path, params) => call("GET", path, { params, as: "text" }),
  blob: (path, params) => call("GET", path, { params, as: "blob" }),
};
