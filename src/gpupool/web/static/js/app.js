// The dashboard shell: sign-in state, navigation, and a hash router (#/queue?state=pending).
// Hash routes keep the server side to one page at "/" and make every view a shareable link.
import { api, ApiError, TOKEN_STORAGE_KEY, token } from "./api.js";
import { h, replace } from "./dom.js";
import { clock } from "./fmt.js";
import { LANGS, lang, setLang, t, translatePage } from "./i18n.js";
import * as application from "./pages/application.js";
import * as calls from "./pages/calls.js";
import * as job from "./pages/job.js";
import * as overview from "./pages/overview.js";
import * as queue from "./pages/queue.js";
import * as reports from "./pages/reports.js";
import * as signin from "./pages/signin.js";
import * as tenants from "./pages/tenants.js";
import * as whatif from "./pages/whatif.js";

const PAGES = { overview, queue, job, tenants, reports, calls, application, whatif, signin };
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
  document.getElementById("who-role").textContent = t(`role.${session.role}`);
  // The UI offers only what the API allows: the what-if page is for viewers and pool admins.
  document.getElementById("nav-whatif").hidden = !session.can_whatif;
}

function markNav(name) {
  const current = { job: "queue", application: "calls" }[name] || name;
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
      replace(main, h("p", { class: "error", role: "alert" }, t("app.no_answer", { error: e.message })));
      return;
    }
    if (!state.session) {
      signOut(t("app.token_unknown"));
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
    root.append(h("h1", { tabindex: "-1" }, t("app.not_found")), h("p", {}, h("a", { href: "#/overview" }, t("app.back_overview"))));
  } else if (page.allowed && !page.allowed(state.session)) {
    root.append(
      h("h1", { tabindex: "-1" }, page.title ? page.title() : t("app.not_available")),
      h("p", { class: "notice" }, page.refusal ? page.refusal() : t("app.refused")),
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
  // Move focus to the new page's heading, so keyboard and screen-reader users start there
  // (unless the page put it somewhere itself: the sign-in page on its token field).
  const h1 = root.querySelector("h1");
  if (h1 && state.alive === alive && !root.contains(document.activeElement)) {
    h1.setAttribute("tabindex", "-1");
    h1.focus({ preventScroll: true });
  }
}

// ---- connection: a persistent banner while the API does not answer, the page's figures
// hidden (never stale numbers), a retry every few seconds; the first answer redraws the page.
let retry = 0;
let lostAt = 0;
function showOffline() {
  if (!lostAt) lostAt = Date.now();
  document.body.classList.add("offline");
  const conn = document.getElementById("conn");
  replace(conn, t("conn.lost"), " ", h("span", { class: "muted" }, t("conn.since", { time: clock(lostAt) })));
  conn.hidden = false;
  if (!retry) {
    retry = setInterval(async () => {
      try {
        const r = await fetch("/v1/health", { cache: "no-store" });
        if (r.ok) window.dispatchEvent(new CustomEvent("gpupool:online"));
      } catch {
        // still down: the banner stays
      }
    }, 2000);
  }
}
function showOnline() {
  clearInterval(retry);
  retry = 0;
  lostAt = 0;
  const conn = document.getElementById("conn");
  const was = !conn.hidden;
  conn.hidden = true;
  document.body.classList.remove("offline");
  if (was) route(); // fresh figures, not the ones from before the outage
}
window.addEventListener("gpupool:offline", showOffline);
window.addEventListener("gpupool:online", showOnline);

// ---- the language switcher
const langSel = document.getElementById("lang");
for (const [code, name] of LANGS) langSel.append(h("option", { value: code, selected: code === lang, lang: code }, name));
langSel.addEventListener("change", () => setLang(langSel.value));
translatePage();

// The skip link moves focus without touching the address (a hash change is a route here).
document.getElementById("skip-main").addEventListener("click", (ev) => {
  ev.preventDefault();
  document.getElementById("main").focus();
});
document.getElementById("signout").addEventListener("click", () => signOut(t("app.signed_out")));
window.addEventListener("gpupool:unauthorized", () => signOut(t("app.token_unknown")));
// Signed out (or in as someone else) in another tab: follow it here.
window.addEventListener("storage", (ev) => {
  if (ev.key !== TOKEN_STORAGE_KEY) return;
  state.session = null;
  if (!ev.newValue) signOut(t("app.signed_out"));
  else route();
});
window.addEventListener("hashchange", route);
route();
