// One application (#/application/<id>): what was asked and why, its reviews and award. Its
// project's lead submits or withdraws it; a reviewer of its call scores each criterion and
// comments (refused by the API for a reviewer of the applicant's organisation: the page shows
// the refusal); a pool admin awards it, in full or in part, or declines it, once the call is
// closed; the project's members report outputs against the award.
import { api, ApiError } from "../api.js";
import { field, h, replace, select, toast } from "../dom.js";
import * as f from "../fmt.js";
import { t } from "../i18n.js";
import { appBadge, callBadge, callTitle, gpusText, hoursText, isPoolAdmin, leadProjects, perModel } from "../programme.js";

export const title = () => t("pr.application");
const OUTPUT_KINDS = ["paper", "model", "product", "dataset", "software", "other"];
const errorText = (e) => (e instanceof ApiError ? e.explained : e.message);
const failed = (box, e) => replace(box, h("p", { class: "error", role: "alert" }, errorText(e)));

/** POST ``path`` with ``body``; redraw the page, or show the refusal in ``msg``. */
async function act(msg, path, body, done) {
  try {
    await api.post(path, body);
    done();
  } catch (e) {
    failed(msg, e);
  }
}

function leadActions(app, reload) {
  const msg = h("div", { role: "status", "aria-live": "polite" });
  const submit = app.state === "draft" ? h("button", { type: "button", id: "app-submit", onclick: () => act(msg, `/v1/applications/${app.id}/submit`, undefined, reload) }, t("pr.submit")) : null;
  let armed = false;
  const withdraw = ["draft", "submitted", "under_review"].includes(app.state)
    ? h("button", { type: "button", class: "secondary", id: "app-withdraw", onclick: (ev) => {
        if (!armed) {
          armed = true;
          ev.target.textContent = t("pr.confirm_withdraw");
          return;
        }
        act(msg, `/v1/applications/${app.id}/withdraw`, undefined, reload);
      } }, t("pr.withdraw"))
    : null;
  if (!submit && !withdraw) return null;
  return h("section", { class: "card", "aria-labelledby": "lead-h" }, h("h2", { id: "lead-h" }, t("pr.your_application")), h("div", { class: "actions" }, submit, withdraw), msg);
}

function reviewForm(app, call, session, reload) {
  const mine = app.reviews.find((r) => r.reviewer === session.user);
  const inputs = call.criteria.map((c) =>
    field(`${c.name} (×${f.num2(c.weight)})`, h("input", { type: "number", min: 0, max: 10, step: "any", required: true, value: mine?.scores[c.key] ?? "", "data-key": c.key }), `rev-${c.key}`),
  );
  const comment = h("textarea", { id: "rev-comment", rows: 4, cols: 70 }, mine?.comment || "");
  const msg = h("div", { role: "status", "aria-live": "polite" });
  const form = h(
    "form",
    { class: "card", id: "review-form", "aria-labelledby": "review-h" },
    h("h2", { id: "review-h" }, mine ? t("pr.your_review") : t("pr.review")),
    h("p", { class: "muted small" }, t("pr.score_note")),
    h("div", { class: "fields" }, inputs),
    h("div", { class: "fields" }, h("div", { class: "field" }, h("label", { for: "rev-comment" }, t("pr.comment")), comment)),
    h("div", { class: "actions" }, h("button", { type: "submit" }, t("pr.save_review"))),
    msg,
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const scores = Object.fromEntries(inputs.map((d) => d.querySelector("input")).map((i) => [i.dataset.key, Number(i.value)]));
    act(msg, `/v1/applications/${app.id}/reviews`, { scores, comment: comment.value }, () => {
      toast(t("pr.review_saved"));
      reload();
    });
  });
  return form;
}

function awardForm(app, call, reload) {
  // Prefilled with what was asked, within what the call has left.
  const within = (asked, left) => Object.fromEntries(Object.entries(asked).map(([m, v]) => [m, Math.min(v, left[m] ?? 0)]));
  const hours = perModel("award-hours", Object.keys(app.gpu_hours), within(app.gpu_hours, call.gpu_hours_left));
  const guar = Object.keys(app.guaranteed).length ? perModel("award-guar", Object.keys(app.guaranteed), within(app.guaranteed, call.guaranteed_left), { step: 1 }) : null;
  const note = h("input", { id: "award-note", size: 50 });
  const msg = h("div", { role: "status", "aria-live": "polite" });
  const form = h(
    "form",
    { class: "card", id: "award-form", "aria-labelledby": "award-h" },
    h("h2", { id: "award-h" }, t("pr.decide")),
    h("p", { class: "muted small" }, t("pr.left_now", { hours: hoursText(call.gpu_hours_left), gpus: gpusText(call.guaranteed_left) })),
    h("h3", {}, t("pr.award_hours")),
    hours.el,
    guar ? [h("h3", {}, t("pr.guaranteed_per_model")), guar.el] : null,
    h("div", { class: "fields" }, field(t("pr.note"), note)),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit", id: "award" }, t("pr.award")),
      h("button", { type: "button", class: "danger", id: "decline", onclick: () => act(msg, `/v1/applications/${app.id}/decline`, { note: note.value }, reload) }, t("pr.decline")),
    ),
    msg,
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const body = { gpu_hours: hours.read(), guaranteed: guar ? guar.read() : {}, note: note.value };
    act(msg, `/v1/applications/${app.id}/award`, body, () => {
      toast(t("pr.awarded_toast"));
      reload();
    });
  });
  return form;
}

function outputForm(app, reload) {
  const kind = select({ id: "out-kind" }, OUTPUT_KINDS.map((k) => [k, t(`out.${k}`)]), "paper");
  const ttl = h("input", { id: "out-title", required: true, size: 40 });
  const url = h("input", { id: "out-url", type: "url", required: true, size: 40, placeholder: "https://" });
  const msg = h("div", { role: "status", "aria-live": "polite" });
  const form = h(
    "form",
    { id: "output-form" },
    h("div", { class: "fields" }, field(t("pr.output_kind"), kind), field(t("pr.output_title"), ttl), field(t("pr.output_url"), url), h("button", { type: "submit", class: "secondary" }, t("pr.report_output"))),
    msg,
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(msg, `/v1/applications/${app.id}/outputs`, { kind: kind.value, title: ttl.value, url: url.value }, reload);
  });
  return form;
}

function awardCard(app, mayReport, reload) {
  const a = app.award;
  return h(
    "section",
    { class: "card", "aria-labelledby": "award-out-h", id: "award-out" },
    h("h2", { id: "award-out-h" }, t("pr.the_award")),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, t("pr.awarded")), h("dd", {}, hoursText(a.gpu_hours)),
      h("dt", {}, t("pr.guaranteed")), h("dd", {}, gpusText(a.guaranteed)),
      h("dt", {}, t("pr.allocations")), h("dd", {}, a.allocation_ids.map((i) => `#${i}`).join(", ") || "—", " ", h("a", { href: `#/tenants?project=${encodeURIComponent(app.project)}` }, t("pr.see_burndown"))),
      h("dt", {}, t("pr.decided_by")), h("dd", {}, `${a.decided_by} · ${f.dateTime(a.at_ms)}`, a.note ? ` · ${a.note}` : ""),
    ),
    h("h3", {}, t("pr.outputs")),
    app.outputs.length
      ? h("ul", {}, app.outputs.map((o) => h("li", {}, `${t(`out.${o.kind}`)}: `, h("a", { href: o.url, rel: "noopener noreferrer", target: "_blank" }, o.title), h("span", { class: "muted" }, ` · ${o.reported_by}`))))
      : h("p", { class: "muted" }, t("pr.no_outputs")),
    mayReport ? outputForm(app, reload) : null,
  );
}

function reviewsCard(app, call) {
  const names = Object.fromEntries(call.criteria.map((c) => [c.key, c.name]));
  return h(
    "section",
    { class: "card", "aria-labelledby": "reviews-h", id: "reviews" },
    h("h2", { id: "reviews-h" }, t("pr.reviews")),
    app.reviews.length
      ? h(
          "ul",
          {},
          app.reviews.map((r) =>
            h("li", {}, h("strong", {}, r.reviewer), ` · ${Object.entries(r.scores).map(([k, v]) => `${names[k] || k} ${f.num2(v)}`).join(", ")}`, r.comment ? h("p", { class: "small" }, r.comment) : null),
          ),
        )
      : h("p", { class: "muted" }, t("pr.no_reviews")),
  );
}

async function show(ctx, id) {
  const { root, session } = ctx;
  const app = await api.get(`/v1/applications/${id}`);
  const call = await api.get(`/v1/calls/${app.call_id}`);
  if (!ctx.alive()) return;
  const reload = () => {
    replace(root);
    show(ctx, id).catch((e) => failed(root, e));
  };
  const lead = leadProjects(session).includes(app.project);
  const reviewer = call.reviewers.includes(session.user);
  const admin = isPoolAdmin(session);
  const member = admin || session.submit_projects.includes(app.project);
  const facts = h(
    "dl",
    { class: "facts" },
    h("dt", {}, t("col.project")), h("dd", {}, app.project),
    h("dt", {}, t("pr.call")), h("dd", {}, h("a", { href: `#/calls/${call.id}` }, callTitle(call)), " ", callBadge(call.state)),
    h("dt", {}, t("pr.requested")), h("dd", {}, hoursText(app.gpu_hours)),
    h("dt", {}, t("pr.guaranteed")), h("dd", {}, gpusText(app.guaranteed)),
    h("dt", {}, t("pr.award_period")), h("dd", {}, `${f.date(app.period_start_ms)} – ${f.date(app.period_end_ms)}`),
    h("dt", {}, t("pr.justification")), h("dd", { class: "prose" }, app.justification),
    h("dt", {}, t("pr.expected_outputs")), h("dd", { class: "prose" }, app.expected_outputs || "—"),
    h("dt", {}, t("pr.written_by")), h("dd", {}, `${app.created_by} · ${f.dateTime(app.created_ms)}`),
    h("dt", {}, t("pr.submitted_at")), h("dd", {}, f.dateTime(app.submitted_ms)),
  );
  // through h(): a null (a part this caller is not offered) is left out, not shown as "null"
  root.append(...h("div", {},
    h("div", { class: "page-head" }, h("div", {}, h("p", { class: "sub" }, h("a", { href: `#/calls/${call.id}` }, callTitle(call))), h("h1", {}, app.title, " ", appBadge(app.state)))),
    h("section", { class: "card", "aria-labelledby": "app-facts-h" }, h("h2", { id: "app-facts-h" }, t("pr.the_application")), facts),
    lead ? leadActions(app, reload) : null,
    reviewer && app.state === "under_review" ? reviewForm(app, call, session, reload) : null,
    admin || app.reviews.length ? reviewsCard(app, call) : null,
    admin && call.state === "closed" && ["submitted", "under_review"].includes(app.state) ? awardForm(app, call, reload) : null,
    app.award ? awardCard(app, member, reload) : null,
  ).children);
}

export async function render(ctx) {
  const id = ctx.args[0];
  try {
    if (!id || !/^\d+$/.test(id)) throw new ApiError(404, {});
    await show(ctx, Number(id));
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      ctx.root.append(h("h1", {}, t("pr.application")), h("p", { class: "notice" }, t("pr.no_application")));
      return;
    }
    throw e;
  }
}
