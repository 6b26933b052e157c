// Tenants: the sector > organisation > project tree with each tenant's guaranteed accelerators
// against what its jobs hold now (shares of the fleet), its usage over a window in GPU-hours
// and effective GPU-hours, and, per project, allocation burn-down.
import { api } from "../api.js";
import { legend, lineChart, shareBar } from "../charts.js";
import { field, h, replace, select } from "../dom.js";
import * as f from "../fmt.js";

export const title = "Tenants";
const WINDOWS = [
  ["24", "last 24 h"],
  ["168", "last 7 days"],
  ["720", "last 30 days"],
  ["8760", "last 365 days"],
];

function burnChart(a) {
  // Burn-down: what is left of the grant over the period, against an even burn to zero.
  const end = a.period_end_ms;
  const left = a.points.map((p) => [p.at_ms, Math.max(0, a.gpu_hours - p.gpu_hours)]);
  const leftEff = a.points.map((p) => [p.at_ms, Math.max(0, a.gpu_hours - p.effective_gpu_hours)]);
  const series = [
    { name: "GPU-hours left", color: "#1d4ed8", points: left },
    { name: "left, counting effective GPU-hours", color: "#059669", dash: "5 3", points: leftEff },
    { name: "even burn to zero", color: "#94a3b8", dash: "2 4", points: [[a.period_start_ms, a.gpu_hours], [end, 0]] },
  ];
  return h(
    "div",
    { class: "burn-chart" },
    lineChart({
      markLast: true,
      now: Date.now(),
      label: `Allocation ${a.id} burn-down: ${f.gpuHours(a.used_gpu_hours)} of ${f.gpuHours(a.gpu_hours)} used`,
      series,
      x0: a.period_start_ms,
      x1: end,
      yMax: a.gpu_hours,
      yFormat: (v) => `${f.int(v)}`,
      yLabel: "GPU·h left",
      height: 200,
    }),
    legend(series),
  );
}

export async function render(ctx) {
  const { root } = ctx;
  let windowH = ctx.query.get("window") || "168";
  let focusProject = ctx.query.get("project") || "";
  const win = select({ id: "t-window" }, WINDOWS, windowH);
  const head = h(
    "div",
    { class: "page-head" },
    h("div", {}, h("h1", {}, "Tenants"), h("p", { class: "sub" }, "Sectors › organisations › projects: guarantees, accelerators in use, usage and budgets")),
    field("Usage over", win),
  );
  const note = h("div", {});
  const tableCard = h("section", { class: "card", "aria-labelledby": "tree-h" });
  const burn = h("section", { class: "card", "aria-labelledby": "burn-h", id: "burndown", hidden: true });
  root.append(head, note, tableCard, burn);
  win.addEventListener("change", () => {
    windowH = win.value;
    sync();
    load();
  });
  const sync = () => ctx.setQuery({ window: windowH === "168" ? "" : windowH, project: focusProject });

  async function showBurn(path, name) {
    focusProject = path;
    sync();
    burn.hidden = false;
    replace(burn, h("h2", { id: "burn-h" }, `Allocations of ${name}`), h("p", { class: "muted" }, "Loading…"));
    const allocs = await api.get("/v1/dashboard/burndown", { project: path });
    if (!ctx.alive()) return;
    const body = allocs.length
      ? h(
          "div",
          { class: "grid two" },
          allocs.map((a) =>
            h(
              "div",
              {},
              h("h3", {}, `Allocation ${a.id}: ${f.gpuHours(a.gpu_hours)} of ${a.model === "*" ? "any model" : a.model}`, " ", h("span", { class: `badge ${a.state === "active" ? "running" : a.state === "exhausted" ? "failed" : "cancelled"}` }, a.state)),
              h(
                "p",
                { class: "small" },
                `Used ${f.gpuHours(a.used_gpu_hours)} (${f.pct(a.used_gpu_hours / Math.max(a.gpu_hours, 1e-9))}) · effective ${f.gpuHours(a.used_effective_gpu_hours)} · left ${f.gpuHours(Math.max(0, a.gpu_hours - a.used_gpu_hours))} · ${f.datetime(a.period_start_ms).slice(0, 10)} to ${f.datetime(a.period_end_ms).slice(0, 10)}`,
                a.guaranteed ? ` · guarantees ${f.gpus(a.guaranteed)}` : "",
                ` · past the budget: ${a.over_budget === "reject" ? "new jobs refused" : "jobs run as preemptible"}`,
              ),
              burnChart(a),
            ),
          ),
        )
      : h("p", { class: "muted" }, "No allocations: the project has no GPU-hour budget (its guarantee and fair share still apply).");
    replace(
      burn,
      h("div", { class: "card-head" }, h("h2", { id: "burn-h", tabindex: "-1" }, `Allocations of ${name}`), h("button", { type: "button", class: "link", onclick: () => { burn.hidden = true; focusProject = ""; sync(); } }, "Close")),
      h("p", { class: "muted small" }, "Effective GPU-hours weigh each hour by the accelerator's speed for the job's workload class (an hour on a model twice as fast counts two)."),
      body,
    );
  }

  async function load() {
    const data = await api.get("/v1/dashboard/tenants", { window_h: windowH });
    if (!ctx.alive()) return;
    replace(note, data.partial ? h("p", { class: "notice" }, "You see guarantees for your branch of the tree, and usage of your own projects only.") : null);
    const maxShare = Math.max(0.0001, ...data.tenants.map((t) => Math.max(t.guaranteed_share, t.actual_share)));
    const rows = data.tenants.map((t) => {
      const isProject = t.kind === "project";
      return h(
        "tr",
        { class: `depth-${t.depth}`, "data-path": t.path },
        h(
          "th",
          { scope: "row", class: "tenant" },
          h("span", { class: "indent", style: { width: `${t.depth * 1.4}rem` } }),
          h("span", {}, t.name),
          h("span", { class: "kind" }, t.kind),
          h("span", { class: "path", style: { marginLeft: `${t.depth * 1.4}rem` } }, t.path),
        ),
        h("td", { class: "num" }, t.guaranteed_gpus ? f.gpus(t.guaranteed_gpus) : h("span", { class: "muted" }, "none"), Object.keys(t.guaranteed).length ? h("span", { class: "path" }, Object.entries(t.guaranteed).map(([m, n]) => `${m === "*" ? "any" : m}\u00a0${f.int(n)}`).join(", ")) : null),
        h("td", { class: "num" }, t.usage_shown ? f.gpus(t.in_use_gpus) : h("span", { class: "muted" }, "—")),
        h(
          "td",
          {},
          shareBar(t.guaranteed_share, t.actual_share, maxShare, `${t.name}: guaranteed ${f.pct(t.guaranteed_share)} of the fleet, using ${f.pct(t.actual_share)} now`),
          h("span", { class: "path nowrap" }, `guaranteed ${f.pct(t.guaranteed_share)} · actual ${t.usage_shown ? f.pct(t.actual_share) : "—"}`),
        ),
        h("td", { class: "num" }, t.usage_shown ? f.gpuHours(t.gpu_hours) : "—"),
        h("td", { class: "num" }, t.usage_shown ? f.gpuHours(t.effective_gpu_hours) : "—"),
        h("td", {}, isProject && t.usage_shown ? h("button", { type: "button", class: "secondary small nowrap", onclick: () => showBurn(t.path, t.name).then(() => burn.querySelector("h2")?.focus()) }, "Burn-down") : ""),
      );
    });
    replace(
      tableCard,
      h("h2", { id: "tree-h" }, "Tenant tree"),
      h(
        "p",
        { class: "muted small" },
        `${f.gpus(data.fleet_gpus)} in the fleet, ${f.gpus(data.busy_gpus)} busy${data.partial ? " in your projects" : ""}. Usage from ${f.datetime(data.start_ms)} to ${f.datetime(data.end_ms)}. Shares are of the fleet's accelerators; a tenant without its own guarantee shows its children's.`,
      ),
      h(
        "div",
        { class: "legend" },
        h("span", {}, h("span", { class: "swatch guar" }), "guaranteed share"),
        h("span", {}, h("span", { class: "swatch busy" }), "actual share (accelerators its jobs hold now)"),
      ),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          {},
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              h("th", { scope: "col" }, "Tenant"),
              h("th", { scope: "col", class: "num" }, "Guaranteed"),
              h("th", { scope: "col", class: "num" }, "In use now"),
              h("th", { scope: "col" }, "Share of the fleet"),
              h("th", { scope: "col", class: "num" }, "GPU-hours"),
              h("th", { scope: "col", class: "num" }, "Effective GPU-hours"),
              h("th", { scope: "col" }, h("span", { class: "muted" }, "Budget")),
            ),
          ),
          h("tbody", {}, rows),
        ),
      ),
    );
    if (focusProject && burn.hidden) {
      const t = data.tenants.find((x) => x.path === focusProject);
      if (t) showBurn(t.path, t.name);
    }
  }

  await load();
  ctx.every(load, 15000);
}
