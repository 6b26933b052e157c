// Sign in with an API token, or (when the service has an identity provider) with the
// provider: "Sign in with <name>" goes to /v1/auth/oidc/login, and the callback page hands
// the session token back (js/oidc-handoff.js). The token is kept in sessionStorage: it lasts
// while this tab is open and is never written to disk by the page, nor sent anywhere but this
// service's API.
import { api, ApiError, token } from "../api.js";
import { h } from "../dom.js";

export const title = "Sign in";

export async function render(ctx) {
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    placeholder: "gpt_…",
    "aria-describedby": "token-help",
  });
  const msg = h("p", { id: "signin-msg", role: "alert", hidden: !ctx.notice, class: "notice" }, ctx.notice || "");
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    { class: "card", novalidate: true },
    h("h1", {}, "Sign in to gpupool"),
    h("p", { class: "sub" }, "The dashboard of the national GPU pool: fleet, queue, tenants and what-if studies."),
    msg,
    h("div", { class: "field" }, h("label", { for: "token" }, "API token"), input),
    h(
      "p",
      { id: "token-help", class: "muted small" },
      "Paste a token of yours (",
      h("code", {}, "gpupool login"),
      " or POST /v1/tokens make one). A new service's first pool admin token is printed once by ",
      h("code", {}, "gpupool serve"),
      ". The token stays in this browser tab only.",
    ),
    h("div", { class: "actions" }, button),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const t = input.value.trim();
    msg.hidden = false;
    msg.className = "notice";
    if (!t) {
      msg.textContent = "Enter a token.";
      input.focus();
      return;
    }
    button.disabled = true;
    msg.textContent = "Checking…";
    try {
      const session = await api.get("/v1/dashboard/session", undefined, { auth: t });
      token.set(t);
      ctx.signedIn(session);
      const after = sessionStorage.getItem("gpupool.after");
      sessionStorage.removeItem("gpupool.after");
      location.hash = after && !after.startsWith("#/signin") ? after : "#/overview";
    } catch (e) {
      msg.className = "error";
      msg.textContent =
        e instanceof ApiError && e.status === 401 ? "That token is unknown or revoked." : `Could not sign in: ${e.message}`;
      button.disabled = false;
      input.select();
    }
  });
  const wrap = h("div", { class: "signin" }, form);
  ctx.root.append(wrap);
  input.focus();
  // The provider's button, when the service has one (asked without a token: it is public).
  try {
    const info = await api.get("/v1/auth/oidc", undefined, { auth: "" });
    if (info.enabled && ctx.alive()) {
      const link = h("a", { class: "button", id: "oidc-signin", href: info.login_url }, `Sign in with ${info.provider}`);
      const block = h(
        "div",
        { class: "oidc" },
        h("div", { class: "actions" }, link),
        h("p", { class: "muted small" }, "A person gets a short-lived token of their own for this tab. Programs use API tokens."),
        h("p", { class: "or" }, "or with an API token"),
      );
      form.insertBefore(block, msg);
    }
  } catch {
    // no provider information: the token sign-in still works
  }
}
