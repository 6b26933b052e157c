// Sign in with an API token, or (when the service has an identity provider) with the
// provider: "Sign in with <name>" goes to /v1/auth/oidc/login, and the callback page hands
// the session token back (js/oidc-handoff.js). The token is kept in localStorage (js/api.js:
// every tab of this browser shares the sign-in until "Sign out"), and sent nowhere but this
// service's API.
import { api, ApiError, token } from "../api.js";
import { h } from "../dom.js";
import { t } from "../i18n.js";

export const title = () => t("signin.title");

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
  const button = h("button", { type: "submit" }, t("signin.button"));
  const form = h(
    "form",
    { class: "card", novalidate: true },
    h("h1", {}, t("signin.heading")),
    h("p", { class: "sub" }, t("signin.sub")),
    msg,
    h("div", { class: "field" }, h("label", { for: "token" }, t("signin.token")), input),
    h(
      "p",
      { id: "token-help", class: "muted small" },
      t("signin.help1"),
      h("code", {}, "gpupool login"),
      t("signin.help2"),
      h("code", {}, "gpupool serve"),
      t("signin.help3"),
    ),
    h("div", { class: "actions" }, button),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const value = input.value.trim();
    msg.hidden = false;
    msg.className = "notice";
    if (!value) {
      msg.textContent = t("signin.enter");
      input.focus();
      return;
    }
    button.disabled = true;
    msg.textContent = t("signin.checking");
    try {
      const session = await api.get("/v1/dashboard/session", undefined, { auth: value });
      token.set(value);
      ctx.signedIn(session);
      const after = sessionStorage.getItem("gpupool.after");
      sessionStorage.removeItem("gpupool.after");
      location.hash = after && !after.startsWith("#/signin") ? after : "#/overview";
    } catch (e) {
      msg.className = "error";
      msg.textContent =
        e instanceof ApiError && e.status === 401 ? t("signin.unknown") : t("signin.failed", { error: e.message });
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
      const link = h("a", { class: "button", id: "oidc-signin", href: info.login_url }, t("signin.with", { provider: info.provider }));
      const block = h(
        "div",
        { class: "oidc" },
        h("div", { class: "actions" }, link),
        h("p", { class: "muted small" }, t("signin.oidc_note")),
        h("p", { class: "or" }, t("signin.or")),
      );
      form.insertBefore(block, msg);
    }
  } catch {
    // no provider information: the token sign-in still works
  }
}
