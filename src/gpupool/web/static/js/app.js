// The dashboard shell: sign-in state, navigation, and a hash router (#/queue?state=pending).
// Hash routes keep the server side to one page at "/" and make every view a shareable link.
import { api, ApiError, token } from "./api.js";
import { h, replace } from "./dom.js";
import * as job from "./pages/job.js";
import * as overview from "./pages/overview.js";
import * as queue from "./pages/queue.js";
import * as signin from "./pages/signin.js";
import * as tenants from "./pages/tenants.js";
import * as whatif from "./pages/whatif.js";

const PAGES = { overview, queue, job, tenants, whatif, signin };
const state = { session: null, timers: [], alive: null, notice: "" };

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, qs] = raw.split("?");
  const parts = (path || "").split("/").filter(Boolean).map(decodeURIComponent);
  return { name: parts[0] || "overview", args: parts.slice(1), query: new URLSearchParams(qs || "") };
}

export function go(path) {
  location.hash = `#/${path}`;
}

function stopTimers() {
  for (const t of state.timers) clearInterval(t);
  state.timers = [];
}

function showChrome(session) {
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  nav.hidden = !session;
  who.hidden = !session;
  if (!session) return;
  document.getElementById("who-name").textContent = session.display_name && session.display_name !== session.user
    ? `${session.display_name} (${session.user})`
    : session.user;
  document.getElementById("who-role").textContent = session.role;
  // The UI offers only what the API allows: the what-if page is for viewers and pool admins.
  document.getElementById("nav-whatif").hidden = !session.can_whatif;
}

function markNav(name) {
  const current = name === "job" ? "queue" : name;
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.page === current) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

async function loadSession() {
  try {
    return await api.get("/v1/dashboard/session");
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return null;
    throw e;
  }
}

function signOut(notice = "") {
  token.clear();
  state.session = null;
  state.notice = notice;
  showChrome(null);
  if (parseHash().name !== "signin") go("signin");
  else route();
}

async function route() {
  stopTimers();
  const r = parseHash();
  const main = document.getElementById("main");
  const alive = {};
  state.alive = alive;
  if (!token.get() && r.name !== "signin") {
    sessionStorage.setItem("gpupool.after", location.hash || "#/overview");
    go("signin");
    return;
  }
  if (token.get() && !state.session) {
    try {
      state.session = await loadSession();
    } catch (e) {
      replace(main, h("p", { class: "error", role: "alert" }, `The service did not answer: ${e.message}`));
      return;
    }
    if (!state.session) {
      signOut("Your token is unknown or revoked: sign in again.");
      return;
    }
  }
  if (r.name === "signin" && state.session) {
    go("overview");
    return;
  }
  showChrome(state.session);
  markNav(r.name);
  const page = PAGES[r.name];
  const root = h("div", { class: `page page-${r.name}` });
  replace(main, root);
  const ctx = {
    session: state.session,
    root,
    args: r.args,
    query: r.query,
    notice: state.notice,
    /** Run ``fn`` now and every ``ms`` while this page is shown and the tab is visible. */
    every(fn, ms) {
      const tick = () => {
        if (state.alive === alive && !document.hidden) fn();
      };
      state.timers.push(setInterval(tick, ms));
    },
    /** Is this page still the one shown (async work checks before writing)? */
    alive: () => state.alive === alive,
    /** Change the query part of the address without re-rendering (filters, sorting). */
    setQuery(params) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
      const qs = q.toString();
      const path = [r.name, ...r.args.map(encodeURIComponent)].join("/");
      history.replaceState(null, "", `#/${path}${qs ? `?${qs}` : ""}`);
    },
    go,
    signedIn(session) {
      state.session = session;
      state.notice = "";
      showChrome(session);
    },
  };
  state.notice = "";
  if (!page) {
    root.append(h("h1", { tabindex: "-1" }, "Page not found"), h("p", {}, h("a", { href: "#/overview" }, "Back to the overview")));
  } else if (page.allowed && !page.allowed(state.session)) {
    root.append(
      h("h1", { tabindex: "-1" }, page.title || "Not available"),
      h("p", { class: "notice" }, page.refusal || "Your role does not give access to this page."),
    );
  } else {
    try {
      await page.render(ctx);
    } catch (e) {
      if (state.alive === alive) {
        root.append(h("p", { class: "error", role: "alert" }, e instanceof ApiError ? e.explained : String(e)));
      }
    }
  }
  document.title = `${root.querySelector("h1")?.textContent || "gpupool"} · gpupool`;
  // Move focus to the new page's heading, so keyboard and screen-reader users start there.
  const h1 = root.querySelector("h1");
  if (h1 && state.alive === alive) {
    h1.setAttribute("tabindex", "-1");
    h1.focus({ preventScroll: true });
  }
}

document.getElementById("signout").addEventListener("click", () => signOut("Signed out."));
window.addEventListener("gpupool:unauthorized", () => signOut("Your token is unknown or revoked: sign in again."));
window.addEventListener("hashchange", route);
route();
