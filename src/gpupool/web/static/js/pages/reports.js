// Reports: the public report of a period as /v1/reports/public gives it to any signed-in user:
// for each sector and call GPU-hours granted, used and left; shares of the pool against their
// targets; waits; utilisation; fairness; the share of work on domestic NPUs. Aggregates only:
// no project, job or user appears. The same figures as `gpupool report public`.
import { api } from "../api.js";
import { shareBar } from "../charts.js";
import { field, h, replace, select } from "../dom.js";
import * as f from "../fmt.js";
import { lang, t } from "../i18n.js";

export const title = () => t("nav.reports");

/** This quarter and the five before it, newest first ("2026-Q1"), in UTC as the API counts. */
function quarters(now = new Date()) {
  const out = [];
  let y = now.getUTCFullYear();
  let q = Math.floor(now.getUTCMonth() / 3) + 1;
  for (let i = 0; i < 6; i += 1) {
    out.push(`${y}-Q${q}`);
    q -= 1;
    if (q === 0) {
      q = 4;
      y -= 1;
    }
  }
  return out;
}

/** A table: columns as [heading, cell(row), numeric?]. */
function table(label, columns, rows) {
  if (!rows.length) return h("p", { class: "muted" }, t("rep.none"));
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { "aria-label": label },
      h("thead", {}, h("tr", {}, columns.map(([head, , num]) => h("th", { scope: "col", class: num ? "num" : "" }, head)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, columns.map(([, cell, num]) => h("td", { class: num ? "num" : "" }, cell(r)))))),
    ),
  );
}

/** A wait: "—" without jobs; under a second reads so (a zero duration formats as nothing). */
const minutes = (s) => (s === null || s === undefined ? "—" : s < 1 ? t("rep.under_a_second") : f.duration(s));

function figures(data) {
  const p = data.pool;
  const rows = [
    [t("rep.fleet"), f.gpus(p.fleet_gpus)],
    [t("rep.capacity"), f.gpuHours(p.capacity_gpu_hours)],
    [t("rep.used"), f.gpuHours(p.gpu_hours)],
    [t("rep.effective"), f.gpuHours(p.effective_gpu_hours)],
    [t("rep.utilisation"), f.pct(p.utilisation)],
    [t("rep.jobs_started"), f.int(p.jobs_started)],
    [t("rep.wait_p50"), minutes(p.wait_p50_s)],
    [t("rep.wait_p95"), minutes(p.wait_p95_s)],
    [t("rep.jain"), p.jain_fairness === null ? "—" : f.num2(p.jain_fairness)],
    [t("rep.demand"), f.int(p.projects_with_demand)],
    [t("rep.domestic"), f.pct(p.domestic_npu_share)],
  ];
  return table(t("rep.pool"), [[t("rep.figure"), (r) => r[0]], [t("rep.value"), (r) => r[1], true]], rows);
}

function sectors(data) {
  const max = Math.max(0.01, ...data.sectors.map((s) => Math.max(s.target_share, s.actual_share || 0)));
  return table(t("rep.sectors"), [
    [t("rep.sector"), (s) => h("span", {}, s.name, " ", h("span", { class: "path" }, s.sector))],
    [t("rep.granted"), (s) => f.gpuHours(s.granted_gpu_hours), true],
    [t("rep.used_grants"), (s) => f.gpuHours(s.used_gpu_hours), true],
    [t("rep.left"), (s) => f.gpuHours(s.left_gpu_hours), true],
    [t("rep.used_period"), (s) => f.gpuHours(s.gpu_hours), true],
    [
      t("rep.share"),
      (s) =>
        h(
          "div",
          {},
          shareBar(s.target_share, s.actual_share || 0, max, t("rep.share_label", { target: f.pct(s.target_share), actual: f.pct(s.actual_share) })),
          h("span", { class: "path" }, t("rep.share_label", { target: f.pct(s.target_share), actual: f.pct(s.actual_share) })),
        ),
    ],
    [t("rep.jobs_started"), (s) => f.int(s.jobs_started), true],
    [t("rep.wait_p50"), (s) => minutes(s.wait_p50_s), true],
    [t("rep.wait_p95"), (s) => minutes(s.wait_p95_s), true],
  ], data.sectors);
}

function calls(data) {
  return table(t("rep.calls"), [
    [t("rep.call"), (c) => (lang === "ko" ? c.title_ko : c.title_en)],
    [t("rep.sector"), (c) => c.sector],
    [t("rep.granted"), (c) => f.gpuHours(c.granted_gpu_hours), true],
    [t("rep.used"), (c) => f.gpuHours(c.used_gpu_hours), true],
    [t("rep.left"), (c) => f.gpuHours(c.left_gpu_hours), true],
  ], data.calls);
}

function models(data) {
  return table(t("rep.models"), [
    [t("rep.model"), (m) => m.model],
    [t("rep.vendor"), (m) => m.vendor],
    [t("rep.domestic_npu"), (m) => (m.domestic ? t("rep.yes") : t("rep.no"))],
    [t("rep.used"), (m) => f.gpuHours(m.gpu_hours), true],
    [t("rep.effective"), (m) => f.gpuHours(m.effective_gpu_hours), true],
  ], data.models);
}

export async function render(ctx) {
  const { root } = ctx;
  const options = quarters();
  let period = ctx.query.get("period") || options[0];
  if (!options.includes(period)) options.push(period);
  const pick = select({ id: "rep-period" }, options, period);
  const head = h(
    "div",
    { class: "page-head" },
    h("div", {}, h("h1", {}, t("nav.reports")), h("p", { class: "sub" }, t("rep.sub"))),
    field(t("rep.period"), pick),
  );
  const body = h("div", {});
  root.append(head, body);
  pick.addEventListener("change", () => {
    period = pick.value;
    ctx.setQuery({ period });
    load();
  });

  async function load() {
    replace(body, h("p", { class: "muted" }, t("app.loading")));
    let data;
    try {
      data = await api.get("/v1/reports/public", { period });
    } catch (e) {
      if (!ctx.alive()) return;
      replace(body, h("p", { class: "error", role: "alert" }, t("app.no_answer", { error: e.message })));
      return;
    }
    if (!ctx.alive()) return;
    const card = (id, heading, ...content) => h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, heading), ...content);
    replace(
      body,
      h("p", { class: "muted" }, t("rep.span", { start: f.dateTime(data.start_ms), end: f.dateTime(data.end_ms), until: f.dateTime(data.until_ms) })),
      card("rep-pool-h", t("rep.pool"), figures(data)),
      card("rep-sectors-h", t("rep.sectors"), sectors(data)),
      card("rep-calls-h", t("rep.calls"), calls(data)),
      card("rep-models-h", t("rep.models"), models(data)),
      h("p", { class: "muted" }, t("rep.cli", { period })),
    );
  }
  await load();
}
