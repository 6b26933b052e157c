// Calls for applications (#/calls) and one call (#/calls/<id>): a pool admin writes a call,
// opens, closes and decides it, assigns reviewers and reads the ranked list; a project's lead
// drafts an application to an open call; everyone signed in reads the calls past draft and the
// applications they may read (their projects', or those they review). The API decides every
// right again (``/v1/calls``, ``/v1/applications``): the page only leaves out what it would refuse.
import { api, ApiError } from "../api.js";
import { field, h, replace, select, toast } from "../dom.js";
import * as f from "../fmt.js";
import { t } from "../i18n.js";
import {
  appBadge, callBadge, callTitle, dayMs, dayValue, gpusText, hoursText, isPoolAdmin, leadProjects, perModel,
} from "../programme.js";

export const title = () => t("nav.calls");
const DAY = 86_400_000;
const errorText = (e) => (e instanceof ApiError ? e.explained : e.message);
const failed = (box, e) => replace(box, h("p", { class: "error", role: "alert" }, errorText(e)));

function table(label, heads, rows) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { "aria-label": label },
      h("thead", {}, h("tr", {}, heads.map(([head, num]) => h("th", { scope: "col", class: num ? "num" : "" }, head)))),
      h("tbody", {}, rows),
    ),
  );
}

// ---- the list, and a pool admin's form for a new call

function callForm(ctx, sectors, onDone) {
  const { session } = ctx;
  const today = new Date();
  today.setHours(0, 0, 0, 0);
  const tko = h("input", { id: "call-title-ko", required: true, size: 40 });
  const ten = h("input", { id: "call-title-en", required: true, size: 40 });
  const eligible = h(
    "fieldset",
    { class: "checks", id: "call-sectors" },
    h("legend", {}, t("pr.eligible")),
    sectors.map((s) => h("label", {}, h("input", { type: "checkbox", value: s.path }), s.name)),
  );
  const models = [...session.models, "*"];
  const hours = perModel("call-hours", models);
  const guaranteed = perModel("call-guar", models, {}, { step: 1 });
  // effective: H100-equivalent hours, each hour weighed by its model's throughput (ADR 0018)
  const unit = select({ id: "call-unit" }, [["gpu_hours", t("pr.unit_raw")], ["effective", t("pr.unit_effective")]], "gpu_hours");
  const date = (id, ms) => h("input", { id, type: "date", required: true, value: dayValue(ms) });
  const opens = date("call-opens", today.getTime());
  const closes = date("call-closes", today.getTime() + 30 * DAY);
  const pStart = date("call-start", today.getTime() + 31 * DAY);
  const pEnd = date("call-end", today.getTime() + 31 * DAY + 182 * DAY);
  const crit = [
    ["merit", t("pr.crit_merit"), 3],
    ["feasibility", t("pr.crit_feasibility"), 1],
    ["", "", ""],
  ].map(([key, name, weight], i) =>
    h(
      "div",
      { class: "fields criterion" },
      field(t("pr.crit_key"), h("input", { value: key, size: 12, pattern: "[a-z0-9][a-z0-9_\\-]*", class: "mono" }), `call-crit-key-${i}`),
      field(t("pr.crit_name"), h("input", { value: name, size: 28 }), `call-crit-name-${i}`),
      field(t("pr.crit_weight"), h("input", { type: "number", min: 0, step: "any", value: weight }), `call-crit-weight-${i}`),
    ),
  );
  const msg = h("div", { role: "status", "aria-live": "polite" });
  const button = h("button", { type: "submit" }, t("pr.save_call"));
  const form = h(
    "form",
    { class: "card", id: "call-form", "aria-labelledby": "call-form-h" },
    h("h2", { id: "call-form-h" }, t("pr.new_call")),
    h("div", { class: "fields" }, field(t("pr.title_ko"), tko), field(t("pr.title_en"), ten)),
    h("div", { class: "fields" }, eligible),
    h("h3", {}, t("pr.hours_per_model")),
    hours.el,
    h("div", { class: "fields" }, field(t("pr.unit"), unit)),
    h("h3", {}, t("pr.guaranteed_per_model")),
    guaranteed.el,
    h("div", { class: "fields" }, field(t("pr.opens"), opens), field(t("pr.closes"), closes), field(t("pr.period_start"), pStart), field(t("pr.period_end"), pEnd)),
    h("h3", {}, t("pr.criteria")),
    crit,
    h("div", { class: "actions" }, button, h("span", { class: "muted small" }, t("pr.draft_note"))),
    msg,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const criteria = crit
      .map((row) => [...row.querySelectorAll("input")].map((i) => i.value.trim()))
      .filter(([key]) => key)
      .map(([key, name, weight]) => ({ key, name: name || key, weight: Number(weight) }));
    const body = {
      title_ko: tko.value,
      title_en: ten.value,
      eligible_sectors: [...eligible.querySelectorAll("input:checked")].map((i) => i.value),
      gpu_hours: hours.read(),
      guaranteed: guaranteed.read(),
      opens_ms: dayMs(opens.value),
      closes_ms: dayMs(closes.value),
      period_start_ms: dayMs(pStart.value),
      period_end_ms: dayMs(pEnd.value),
      criteria,
      unit: unit.value,
    };
    button.disabled = true;
    try {
      const call = await api.post("/v1/calls", body);
      toast(t("pr.call_saved", { id: call.id }));
      onDone(call);
    } catch (e) {
      failed(msg, e);
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

async function renderList(ctx) {
  const { root, session } = ctx;
  const admin = isPoolAdmin(session);
  const formBox = h("div", {});
  const newButton = admin ? h("button", { type: "button", id: "new-call", "aria-controls": "call-form" }, t("pr.new_call")) : null;
  root.append(
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, t("nav.calls")), h("p", { class: "sub" }, t("pr.calls_sub"))), newButton),
    formBox,
  );
  const listCard = h("section", { class: "card", "aria-labelledby": "calls-h" });
  root.append(listCard);
  if (newButton) {
    newButton.addEventListener("click", async () => {
      if (formBox.firstChild) return replace(formBox);
      const tree = await api.get("/v1/dashboard/tenants", { window_h: 24 });
      const sectors = tree.tenants.filter((x) => x.kind === "sector");
      replace(formBox, callForm(ctx, sectors, (call) => ctx.go(`calls/${call.id}`)));
      formBox.querySelector("input")?.focus();
    });
  }
  const calls = await api.get("/v1/calls");
  if (!ctx.alive()) return;
  const rows = calls.map((c) =>
    h(
      "tr",
      { "data-call": c.id },
      h("td", {}, h("a", { href: `#/calls/${c.id}` }, callTitle(c)), h("span", { class: "path" }, c.eligible_sectors.join(", "))),
      h("td", {}, callBadge(c.state), c.accepting ? h("span", { class: "path" }, t("pr.accepting")) : null),
      h("td", {}, `${f.date(c.opens_ms)} – ${f.date(c.closes_ms)}`),
      h("td", {}, `${f.date(c.period_start_ms)} – ${f.date(c.period_end_ms)}`),
      h("td", { class: "num" }, hoursText(c.gpu_hours_left), h("span", { class: "path" }, t("pr.of", { total: hoursText(c.gpu_hours) }))),
    ),
  );
  replace(
    listCard,
    h("h2", { id: "calls-h" }, t("pr.calls")),
    calls.length
      ? table(t("pr.calls"), [[t("pr.call")], [t("pr.state")], [t("pr.open_dates")], [t("pr.award_period")], [t("pr.hours_left"), true]], rows)
      : h("p", { class: "muted" }, t("pr.no_calls")),
  );
}

// ---- one call

function applyForm(call, projects, onDone) {
  const project = select({ id: "app-project" }, projects, projects[0]);
  const ttl = h("input", { id: "app-title", required: true, size: 40 });
  const hours = perModel("app-hours", Object.keys(call.gpu_hours));
  const guaranteed = Object.keys(call.guaranteed).length ? perModel("app-guar", Object.keys(call.guaranteed), {}, { step: 1 }) : null;
  const why = h("textarea", { id: "app-justification", required: true, rows: 5, cols: 70 });
  const outputs = h("textarea", { id: "app-outputs", rows: 3, cols: 70 });
  const msg = h("div", { role: "status", "aria-live": "polite" });
  const button = h("button", { type: "submit" }, t("pr.save_draft"));
  const form = h(
    "form",
    { class: "card", id: "apply-form", "aria-labelledby": "apply-h" },
    h("h2", { id: "apply-h" }, t("pr.apply")),
    h("div", { class: "fields" }, field(t("col.project"), project), field(t("pr.app_title"), ttl)),
    h("h3", {}, t("pr.requested_hours")),
    hours.el,
    guaranteed ? [h("h3", {}, t("pr.guaranteed_per_model")), guaranteed.el] : null,
    h("div", { class: "fields" }, h("div", { class: "field" }, h("label", { for: "app-justification" }, t("pr.justification")), why)),
    h("div", { class: "fields" }, h("div", { class: "field" }, h("label", { for: "app-outputs" }, t("pr.expected_outputs")), outputs)),
    h("div", { class: "actions" }, button, h("span", { class: "muted small" }, t("pr.draft_first"))),
    msg,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    button.disabled = true;
    try {
      const app = await api.post("/v1/applications", {
        call_id: call.id,
        project: project.value,
        title: ttl.value,
        gpu_hours: hours.read(),
        guaranteed: guaranteed ? guaranteed.read() : {},
        justification: why.value,
        expected_outputs: outputs.value,
      });
      toast(t("pr.app_saved", { id: app.id }));
      onDone(app);
    } catch (e) {
      failed(msg, e);
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function adminActions(ctx, call, reload) {
  const msg = h("div", { role: "status", "aria-live": "polite" });
  const step = {
    draft: ["open", t("pr.do_open"), t("pr.do_open_note")],
    open: ["close", t("pr.do_close"), t("pr.do_close_note")],
    closed: ["decide", t("pr.do_decide"), t("pr.do_decide_note")],
  }[call.state];
  const stepButton = step
    ? h("button", { type: "button", id: "call-step", onclick: async () => {
        try {
          await api.post(`/v1/calls/${call.id}/${step[0]}`);
          reload();
        } catch (e) {
          failed(msg, e);
        }
      } }, step[1])
    : null;
  const who = h("input", { id: "reviewer-user", size: 18, autocomplete: "off" });
  const addForm = h(
    "form",
    { class: "actions", id: "reviewer-form" },
    field(t("pr.reviewer_user"), who),
    h("button", { type: "submit", class: "secondary" }, t("pr.add_reviewer")),
  );
  addForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api.post(`/v1/calls/${call.id}/reviewers`, { user: who.value.trim() });
      reload();
    } catch (e) {
      failed(msg, e);
    }
  });
  return h(
    "section",
    { class: "card", "aria-labelledby": "call-admin-h" },
    h("h2", { id: "call-admin-h" }, t("pr.administer")),
    h("div", { class: "actions" }, stepButton, h("span", { class: "muted small" }, step ? step[2] : t("pr.decided_note"))),
    call.state !== "decided" ? addForm : null,
    msg,
  );
}

function ranking(data) {
  const rows = data.items.map((r) =>
    h(
      "tr",
      { "data-application": r.application_id },
      h("td", { class: "num" }, f.int(r.rank)),
      h("td", {}, h("a", { href: `#/application/${r.application_id}` }, r.title), h("span", { class: "path" }, r.project)),
      h("td", {}, appBadge(r.state)),
      h("td", { class: "num" }, hoursText(r.gpu_hours), Object.keys(r.guaranteed).length ? h("span", { class: "path" }, gpusText(r.guaranteed)) : null),
      h("td", { class: "num" }, f.int(r.reviews)),
      h("td", { class: "num score" }, r.score === null ? "—" : `${f.num2(r.score)} / ${f.int(data.score_max)}`),
    ),
  );
  return h(
    "section",
    { class: "card", "aria-labelledby": "ranking-h", id: "ranking" },
    h("h2", { id: "ranking-h" }, t("pr.ranking")),
    h("p", { class: "muted small" }, t("pr.left_now", { hours: hoursText(data.gpu_hours_left), gpus: gpusText(data.guaranteed_left) })),
    data.items.length
      ? table(t("pr.ranking"), [[t("pr.rank"), true], [t("pr.application")], [t("pr.state")], [t("pr.requested"), true], [t("pr.reviews"), true], [t("pr.score"), true]], rows)
      : h("p", { class: "muted" }, t("pr.no_applications")),
  );
}

function applications(apps) {
  const rows = apps.map((a) =>
    h(
      "tr",
      { "data-application": a.id },
      h("td", {}, h("a", { href: `#/application/${a.id}` }, a.title), h("span", { class: "path" }, a.project)),
      h("td", {}, appBadge(a.state)),
      h("td", { class: "num" }, hoursText(a.gpu_hours)),
      h("td", { class: "num" }, a.award ? hoursText(a.award.gpu_hours) : "—"),
    ),
  );
  return h(
    "section",
    { class: "card", "aria-labelledby": "apps-h", id: "applications" },
    h("h2", { id: "apps-h" }, t("pr.applications_you_read")),
    apps.length
      ? table(t("pr.applications_you_read"), [[t("pr.application")], [t("pr.state")], [t("pr.requested"), true], [t("pr.awarded"), true]], rows)
      : h("p", { class: "muted" }, t("pr.no_applications")),
  );
}

async function renderCall(ctx, id) {
  const { root, session } = ctx;
  const admin = isPoolAdmin(session);
  const [call, apps, rank] = await Promise.all([
    api.get(`/v1/calls/${id}`),
    api.get("/v1/applications", { call: id }),
    admin ? api.get(`/v1/calls/${id}/ranking`) : null,
  ]);
  if (!ctx.alive()) return;
  const reload = () => {
    replace(root);
    renderCall(ctx, id).catch((e) => failed(root, e));
  };
  const sector = (p) => p.split("/", 1)[0];
  const mine = leadProjects(session).filter((p) => call.eligible_sectors.includes(sector(p)));
  const facts = h(
    "dl",
    { class: "facts" },
    h("dt", {}, t("pr.title_ko")), h("dd", { lang: "ko" }, call.title_ko),
    h("dt", {}, t("pr.title_en")), h("dd", { lang: "en" }, call.title_en),
    h("dt", {}, t("pr.eligible")), h("dd", {}, call.eligible_sectors.join(", ")),
    h("dt", {}, t("pr.open_dates")), h("dd", {}, `${f.dateTime(call.opens_ms)} – ${f.dateTime(call.closes_ms)}`, call.accepting ? ` · ${t("pr.accepting")}` : ""),
    h("dt", {}, t("pr.award_period")), h("dd", {}, `${f.date(call.period_start_ms)} – ${f.date(call.period_end_ms)}`),
    h("dt", {}, t("pr.hours_offered")), h("dd", {}, hoursText(call.gpu_hours)),
    h("dt", {}, t("pr.unit")), h("dd", { id: "call-unit-shown" }, call.unit === "effective" ? t("pr.unit_effective") : t("pr.unit_raw")),
    h("dt", {}, t("pr.hours_left")), h("dd", { id: "call-left" }, hoursText(call.gpu_hours_left)),
    h("dt", {}, t("pr.guaranteed")), h("dd", {}, gpusText(call.guaranteed), Object.keys(call.guaranteed).length ? h("span", { class: "muted" }, " ", t("pr.left_paren", { gpus: gpusText(call.guaranteed_left) })) : null),
    h("dt", {}, t("pr.criteria")), h("dd", {}, call.criteria.map((c) => `${c.name} (×${f.num2(c.weight)})`).join(", ")),
    h("dt", {}, t("pr.reviewers")), h("dd", { id: "call-reviewers" }, call.reviewers.length ? call.reviewers.join(", ") : "—"),
  );
  const formBox = h("div", {});
  const applyButton =
    call.accepting && mine.length
      ? h("button", { type: "button", id: "apply", "aria-controls": "apply-form", onclick: () => {
          if (formBox.firstChild) return replace(formBox);
          replace(formBox, applyForm(call, mine, (app) => ctx.go(`application/${app.id}`)));
          formBox.querySelector("input")?.focus();
        } }, t("pr.apply"))
      : null;
  // through h(): a null (a part this caller is not offered) is left out, not shown as "null"
  root.append(...h("div", {},
    h(
      "div",
      { class: "page-head" },
      h("div", {}, h("p", { class: "sub" }, h("a", { href: "#/calls" }, t("pr.all_calls"))), h("h1", {}, callTitle(call), " ", callBadge(call.state))),
      applyButton,
    ),
    formBox,
    h("section", { class: "card", "aria-labelledby": "call-facts-h" }, h("h2", { id: "call-facts-h" }, t("pr.the_call")), facts),
    admin ? adminActions(ctx, call, reload) : null,
    rank ? ranking(rank) : applications(apps),
  ).children);
}

export async function render(ctx) {
  const id = ctx.args[0];
  if (id === undefined) return renderList(ctx);
  if (!/^\d+$/.test(id)) throw new Error(t("pr.no_call"));
  try {
    return await renderCall(ctx, Number(id));
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      ctx.root.append(h("h1", {}, t("nav.calls")), h("p", { class: "notice" }, t("pr.no_call")));
      return undefined;
    }
    throw e;
  }
}
