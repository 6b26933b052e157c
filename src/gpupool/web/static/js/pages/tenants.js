// Tenants: the sector > organisation > project tree with each tenant's guaranteed accelerators
// against what its jobs hold now (shares of the fleet), its usage over a window in GPU-hours
// and effective GPU-hours, and, per project, allocation burn-down.
import { api } from "../api.js";
import { legend, lineChart, shareBar } from "../charts.js";
import { field, h, replace, select } from "../dom.js";
import * as f from "../fmt.js";
import { t, t as tr } from "../i18n.js";

export const title = () => t("nav.tenants");
/** Usage windows in hours (labels: "ten.window.<hours>"). */
const WINDOWS = ["24", "168", "720", "8760"];

function burnChart(a) {
  // Burn-down: what is left of the grant over the period, against an even burn to zero.
  const end = a.period_end_ms;
  const left = a.points.map((p) => [p.at_ms, Math.max(0, a.gpu_hours - p.gpu_hours)]);
  const leftEff = a.points.map((p) => [p.at_ms, Math.max(0, a.gpu_hours - p.effective_gpu_hours)]);
  const series = [
    { name: t("ten.left"), color: "#1d4ed8", points: left },
    { name: t("ten.left_eff"), color: "#059669", dash: "5 3", points: leftEff },
    { name: t("ten.even_burn"), color: "#94a3b8", dash: "2 4", points: [[a.period_start_ms, a.gpu_hours], [end, 0]] },
  ];
  return h(
    "div",
    { class: "burn-chart" },
    lineChart({
      markLast: true,
      now: Date.now(),
      label: t("ten.burn_label", { id: a.id, used: f.gpuHours(a.used_gpu_hours), total: f.gpuHours(a.gpu_hours) }),
      series,
      x0: a.period_start_ms,
      x1: end,
      yMax: a.gpu_hours,
      yFormat: (v) => `${f.int(v)}`,
      yLabel: t("ten.y_left"),
      height: 200,
    }),
    legend(series),
  );
}

export async function render(ctx) {
  const { root } = ctx;
  let windowH = ctx.query.get("window") || "168";
  let focusProject = ctx.query.get("project") || "";
  const win = select({ id: "t-window" }, WINDOWS.map((w) => [w, t(`ten.window.${w}`)]), windowH);
  const head = h(
    "div",
    { class: "page-head" },
    h("div", {}, h("h1", {}, t("nav.tenants")), h("p", { class: "sub" }, t("ten.sub"))),
    field(t("ten.usage_over"), win),
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
    replace(burn, h("h2", { id: "burn-h" }, t("ten.allocs_of", { name })), h("p", { class: "muted" }, t("app.loading")));
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
              h("h3", {}, t("ten.alloc_head", { id: a.id, hours: f.gpuHours(a.gpu_hours), model: a.model === "*" ? t("q.any_model_lc") : a.model }), " ", h("span", { class: "muted small alloc-unit" }, a.unit === "effective" ? t("pr.unit_effective") : t("pr.unit_raw")), " ", h("span", { class: `badge ${a.state === "active" ? "running" : a.state === "exhausted" ? "failed" : "cancelled"}` }, f.stateText(a.state))),
              h(
                "p",
                { class: "small" },
                t("ten.alloc_facts", { used: f.gpuHours(a.used_gpu_hours), pct: f.pct(a.used_gpu_hours / Math.max(a.gpu_hours, 1e-9)), eff: f.gpuHours(a.used_effective_gpu_hours), left: f.gpuHours(Math.max(0, a.gpu_hours - a.used_gpu_hours)), from: f.date(a.period_start_ms), to: f.date(a.period_end_ms) }),
                a.guaranteed ? ` · ${t("ten.guarantees", { gpus: f.gpus(a.guaranteed) })}` : "",
                ` · ${a.over_budget === "reject" ? t("ten.past_reject") : t("ten.past_preempt")}`,
              ),
              burnChart(a),
            ),
          ),
        )
      : h("p", { class: "muted" }, t("ten.no_allocs"));
    replace(
      burn,
      h("div", { class: "card-head" }, h("h2", { id: "burn-h", tabindex: "-1" }, t("ten.allocs_of", { name })), h("button", { type: "button", class: "link", onclick: () => { burn.hidden = true; focusProject = ""; sync(); } }, t("ten.close"))),
      h("p", { class: "muted small" }, t("ten.eff_note")),
      body,
    );
  }

  async function load() {
    const data = await api.get("/v1/dashboard/tenants", { window_h: windowH });
    if (!ctx.alive()) return;
    replace(note, data.partial ? h("p", { class: "notice", id: "ten-partial" }, t("ten.partial")) : null);
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
          h("span", { class: "kind" }, tr(`kind.${t.kind}`)),
          h("span", { class: "path", style: { marginLeft: `${t.depth * 1.4}rem` } }, t.path),
        ),
        h("td", { class: "num" }, t.guaranteed_gpus ? f.gpus(t.guaranteed_gpus) : h("span", { class: "muted" }, tr("ten.none")), Object.keys(t.guaranteed).length ? h("span", { class: "path" }, Object.entries(t.guaranteed).map(([m, n]) => `${m === "*" ? tr("ten.any") : m}\u00a0${f.int(n)}`).join(", ")) : null),
        h("td", { class: "num" }, t.usage_shown ? f.gpus(t.in_use_gpus) : h("span", { class: "muted" }, "—")),
        h(
          "td",
          {},
          shareBar(t.guaranteed_share, t.actual_share, maxShare, tr("ten.share_label", { name: t.name, g: f.pct(t.guaranteed_share), a: f.pct(t.actual_share) })),
          h("span", { class: "path nowrap" }, tr("ten.share_text", { g: f.pct(t.guaranteed_share), a: t.usage_shown ? f.pct(t.actual_share) : "—" })),
        ),
        h("td", { class: "num" }, t.usage_shown ? f.gpuHours(t.gpu_hours) : "—"),
        h("td", { class: "num" }, t.usage_shown ? f.gpuHours(t.effective_gpu_hours) : "—"),
        h("td", {}, isProject && t.usage_shown ? h("button", { type: "button", class: "secondary small nowrap", onclick: () => showBurn(t.path, t.name).then(() => burn.querySelector("h2")?.focus()) }, tr("ten.burndown")) : ""),
      );
    });
    replace(
      tableCard,
      h("h2", { id: "tree-h" }, tr("ten.tree")),
      h(
        "p",
        { class: "muted small" },
        tr("ten.tree_note", { fleet: f.gpus(data.fleet_gpus), busy: f.gpus(data.busy_gpus), from: f.dateTime(data.start_ms), to: f.dateTime(data.end_ms) }),
      ),
      h(
        "div",
        { class: "legend" },
        h("span", {}, h("span", { class: "swatch guar" }), tr("ten.legend_guar")),
        h("span", {}, h("span", { class: "swatch busy" }), tr("ten.legend_actual")),
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
              h("th", { scope: "col" }, tr("ten.col_tenant")),
              h("th", { scope: "col", class: "num" }, tr("ten.col_guar")),
              h("th", { scope: "col", class: "num" }, tr("ten.col_inuse")),
              h("th", { scope: "col" }, tr("ten.col_share")),
              h("th", { scope: "col", class: "num" }, tr("ten.col_hours")),
              h("th", { scope: "col", class: "num" }, tr("ten.col_eff")),
              h("th", { scope: "col" }, h("span", { class: "muted" }, tr("ten.col_budget"))),
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
