// What the call and application pages share: their states in words and badges, the caller's
// part in the programme (pool admin, lead of which projects, reviewer of which calls), and
// GPU-hours per model as text and as a row of number inputs.
import { h } from "./dom.js";
import * as f from "./fmt.js";
import { lang, t } from "./i18n.js";

/** Call states (keys "cs.<state>"), in the order a call goes through them. */
export const CALL_STATES = ["draft", "open", "closed", "decided"];
/** Application states (keys "as.<state>"). */
export const APP_STATES = ["draft", "submitted", "under_review", "awarded", "partly_awarded", "declined", "withdrawn"];
const CALL_BADGE = { draft: "cancelled", open: "running", closed: "pending", decided: "done" };
const APP_BADGE = {
  draft: "cancelled", submitted: "pending", under_review: "pending", awarded: "done",
  partly_awarded: "done", declined: "failed", withdrawn: "cancelled",
};

export const callBadge = (s) => h("span", { class: `badge ${CALL_BADGE[s] || ""}`, "data-state": s }, t(`cs.${s}`));
export const appBadge = (s) => h("span", { class: `badge ${APP_BADGE[s] || ""}`, "data-state": s }, t(`as.${s}`));
export const callTitle = (c) => (lang === "ko" ? c.title_ko : c.title_en);
export const isPoolAdmin = (session) => session.role === "pool-admin";

/** Projects the caller may write applications for: those they lead or administer (the API's
 * rule: a ``lead`` membership of the project, or an admin membership of it or an ancestor). */
export function leadProjects(session) {
  if (isPoolAdmin(session)) return session.submit_projects;
  const over = session.memberships.filter((m) => m.role === "lead" || m.role === "admin").map((m) => m.tenant);
  return session.submit_projects.filter((p) => over.some((o) => p === o || p.startsWith(`${o}/`)));
}

const modelName = (m) => (m === "*" ? t("q.any_model_lc") : m);
/** {"H100": 600, "*": 10} as "H100 600 GPU·h, any model 10 GPU·h". */
export function hoursText(byModel) {
  const parts = Object.entries(byModel || {}).map(([m, v]) => `${modelName(m)} ${f.gpuHours(v)}`);
  return parts.length ? parts.join(", ") : "—";
}
export function gpusText(byModel) {
  const parts = Object.entries(byModel || {}).filter(([, n]) => n > 0).map(([m, n]) => `${modelName(m)} ${f.gpus(n)}`);
  return parts.length ? parts.join(", ") : "—";
}

/** A number input per model ("<prefix>-<model>"), prefilled; ``read()`` gives {model: n} of those filled. */
export function perModel(prefix, models, values = {}, { step = "any", max } = {}) {
  const inputs = models.map((m) => {
    const id = `${prefix}-${m === "*" ? "any" : m}`;
    const input = h("input", { id, type: "number", min: 0, step, max, value: values[m] ?? "", inputmode: "decimal", "data-model": m });
    return h("div", { class: "field" }, h("label", { for: id }, modelName(m)), input);
  });
  return {
    el: h("div", { class: "fields" }, inputs),
    read() {
      const out = {};
      for (const i of inputs.map((d) => d.querySelector("input"))) {
        if (i.value !== "" && Number(i.value) > 0) out[i.dataset.model] = Number(i.value);
      }
      return out;
    },
  };
}

/** A date input's value ("2026-03-01") as epoch ms at the start of that local day, and back. */
export const dayMs = (v) => new Date(`${v}T00:00`).getTime();
export function dayValue(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}
