// Overview: utilisation by site, cluster and model; a heatmap that starts at network blocks
// (readable for a national fleet of tens of thousands of nodes) and drills down to racks and
// nodes; queue depth and loop cycle time over time; nodes drained or down.
import { api, ApiError } from "../api.js";
import { legend, lineChart, heatColor, utilBar } from "../charts.js";
import { h, replace, toast } from "../dom.js";
import * as f from "../fmt.js";
import { t } from "../i18n.js";

export const title = () => t("nav.overview");
const WINDOWS = [
  900,
  3600,
  6 * 3600,
  24 * 3600,
];
/** Past this many blocks in a cluster, cells drop their text and become small squares. */
const DENSE_AFTER = 48;

function occLabel(o) {
  const parts = [t("ov.busy_of", { busy: f.int(o.busy), total: f.gpus(o.total), pct: f.pct(o.busy / Math.max(o.total, 1)) })];
  if (o.unavailable) parts.push(t("ov.n_unavailable", { gpus: f.gpus(o.unavailable) }));
  if (o.down) parts.push(t("ov.n_down", { nodes: f.nodes(o.down) }));
  if (o.drained) parts.push(t("ov.n_drained", { nodes: f.nodes(o.drained) }));
  return parts.join(", ");
}

function bars(items, sub) {
  return h(
    "div",
    { class: "bars" },
    items.map((o) =>
      h(
        "div",
        { class: "bar-row" },
        h("div", { class: "name" }, o.name, sub ? h("small", {}, sub(o)) : null),
        h("div", { class: "nums" }, `${f.int(o.busy)} / ${f.gpus(o.total)} · ${f.pct(o.busy / Math.max(o.total, 1), 0)}`),
        utilBar(o.busy, o.unavailable, o.total, `${o.name}: ${occLabel(o)}`),
      ),
    ),
  );
}

function utilLegend() {
  return h(
    "div",
    { class: "legend" },
    h("span", {}, h("span", { class: "swatch busy" }), t("ov.legend_busy")),
    h("span", {}, h("span", { class: "swatch unavail" }), t("ov.legend_unavail")),
    h("span", {}, h("span", { class: "swatch free" }), t("ov.legend_free")),
  );
}

/** What the node names of a rack share up to a "-" ("kisti-ib0-r0-"): cards show the rest. */
function sharedPrefix(names) {
  if (names.length < 2) return "";
  let p = names[0];
  for (const n of names) while (!n.startsWith(p)) p = p.slice(0, -1);
  const cut = p.lastIndexOf("-");
  return cut > 0 ? p.slice(0, cut + 1) : "";
}

function heatCell(o, { dense, key, onClick, label }) {
  const frac = o.busy / Math.max(o.total, 1);
  const c = heatColor(frac);
  const cls = ["cell", c.dark && "dark", dense && "dense", o.down && "has-down"];
  if (o.unavailable === o.total && o.total > 0) cls.push("hatch");
  const el = h(
    onClick ? "button" : "div",
    {
      class: cls,
      type: onClick ? "button" : undefined,
      "data-key": key,
      "aria-label": label,
      title: label,
      onclick: onClick,
      style: o.unavailable === o.total && o.total > 0 ? {} : { background: c.bg, color: c.fg },
    },
    dense ? null : [h("span", {}, o.name), h("strong", {}, f.pct(frac, 0))],
  );
  return el;
}

export async function render(ctx) {
  const { root, session } = ctx;
  let windowS = Number(ctx.query.get("window")) || 3600;
  let cluster = ctx.query.get("cluster") || "";
  let block = ctx.query.get("block") || "";

  const head = h("div", { class: "page-head" });
  const kpis = h("div", { class: "kpis", "aria-live": "off" });
  const util = h("div", { class: "grid three" });
  const heat = h("section", { class: "card", "aria-labelledby": "heat-h" });
  const series = h("div", { class: "grid two" });
  const nodesCard = h("section", { class: "card", "aria-labelledby": "nodes-h" });
  const nodesBody = h("div", {});
  root.append(head, kpis, util, heat, series, nodesCard);

  const syncQuery = () => ctx.setQuery({ window: windowS === 3600 ? "" : windowS, cluster, block });

  async function loadFleet() {
    const params = cluster && block ? { cluster, block } : {};
    try {
      return await api.get("/v1/dashboard/fleet", params);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404 && cluster) {
        cluster = block = "";
        syncQuery();
        return api.get("/v1/dashboard/fleet");
      }
      throw e;
    }
  }

  function drawHead(fleet) {
    const sites = fleet.sites.length;
    replace(
      head,
      h(
        "div",
        {},
        h("h1", {}, t("nav.overview")),
        h(
          "p",
          { class: "sub" },
          t("ov.fleet", { name: fleet.name, gpus: f.gpus(fleet.total), nodes: f.nodes(fleet.clusters.reduce((a, c) => a + c.nodes, 0)), sites: f.plural(sites, "unit.site"), clusters: f.plural(fleet.clusters.length, "unit.cluster") }),
        ),
      ),
      h("p", { class: "muted small" }, t("ov.updated"), " ", f.timeEl(h, Date.now(), "absolute"), " · ", t("ov.refresh5")),
    );
  }

  function drawKpis(fleet, last) {
    const down = fleet.clusters.reduce((a, c) => a + c.down, 0);
    const drained = fleet.clusters.reduce((a, c) => a + c.drained, 0);
    const kpi = (label, value, unit, hint) =>
      h("div", { class: "kpi" }, h("div", { class: "label" }, label), h("div", { class: "value" }, value, unit ? h("span", { class: "unit" }, unit) : null), hint ? h("div", { class: "hint" }, hint) : null);
    replace(
      kpis,
      kpi(t("ov.kpi_busy"), f.pct(fleet.busy / Math.max(fleet.total, 1)), "", t("ov.kpi_busy_of", { busy: f.int(fleet.busy), total: f.gpus(fleet.total) })),
      kpi(t("ov.kpi_pending"), last ? f.int(last.pending) : "—", t("ov.u_jobs"), t("ov.kpi_pending_hint")),
      kpi(t("ov.kpi_running"), last ? f.int(last.running) : "—", t("ov.u_jobs"), t("ov.kpi_running_hint")),
      kpi(t("ov.kpi_nodes"), `${f.int(drained)} / ${f.int(down)}`, t("ov.u_nodes"), t("ov.n_unavailable", { gpus: f.gpus(fleet.unavailable) })),
      kpi(t("ov.kpi_cycle"), last && last.cycle_ms_mean !== null ? f.ms(last.cycle_ms_mean) : "—", "", t("ov.kpi_cycle_hint")),
    );
  }

  function drawUtil(fleet) {
    const card = (id, heading, body) =>
      h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, heading), body, utilLegend());
    replace(
      util,
      card("u-site", t("ov.util_site"), bars(fleet.sites, (o) => o.region)),
      card("u-cluster", t("ov.util_cluster"), bars(fleet.clusters, (o) => o.site)),
      card("u-model", t("ov.util_model"), bars(fleet.models)),
    );
  }

  function drawHeat(fleet) {
    const focused = document.activeElement?.dataset?.key;
    const crumbs = h("nav", { class: "crumbs", "aria-label": t("ov.heat_level") });
    const body = h("div", {});
    const drill = (c, b) => {
      cluster = c;
      block = b;
      syncQuery();
      refresh();
    };
    if (fleet.cluster && fleet.block) {
      crumbs.append(
        h("button", { type: "button", class: "link", onclick: () => drill("", "") }, t("ov.all_clusters")),
        h("span", { class: "sep", "aria-hidden": "true" }, "›"),
        h("span", {}, fleet.cluster),
        h("span", { class: "sep", "aria-hidden": "true" }, "›"),
        h("strong", { "aria-current": "location" }, t("ov.block", { block: fleet.block })),
      );
      const racks = fleet.racks.map((r) => {
        const prefix = sharedPrefix(r.node_cells.map((n) => n.name));
        return h(
          "div",
          { class: "rack" },
          h("h3", {}, h("span", { title: t("ov.rack", { rack: r.name }) }, r.name, r.nvlink ? h("small", {}, " · NVLink") : null), h("small", {}, `${f.int(r.busy)}/${f.gpus(r.total)}`)),
          r.node_cells.map((n) =>
            h(
              "div",
              { class: "node", title: `${n.name}: ${t("ov.busy_of", { busy: f.int(n.busy), total: f.gpus(n.gpus), pct: f.pct(n.busy / Math.max(n.gpus, 1), 0) })}, ${f.stateText(n.state)}${n.reason ? ` (${n.reason})` : ""}` },
              h(
                "div",
                {},
                h("div", { class: "mono" }, n.name.slice(prefix.length)),
                h(
                  "div",
                  { class: "slots", role: "img", "aria-label": t("ov.node_label", { name: n.name, busy: f.int(n.busy), total: f.gpus(n.gpus), model: n.model, state: f.stateText(n.state) }) },
                  Array.from({ length: n.gpus }, (_, i) =>
                    h("span", { class: ["slot", i < n.busy ? "busy" : n.state !== "up" ? "unavail" : ""] }),
                  ),
                ),
              ),
              h("div", {}, n.state === "up" ? h("span", { class: "muted state" }, n.model) : h("span", { class: `badge ${n.state}` }, f.stateText(n.state))),
            ),
          ),
        );
      });
      body.append(h("div", { class: "racks" }, racks));
    } else {
      crumbs.append(h("strong", {}, t("ov.all_clusters")), h("span", { class: "muted" }, " · ", t("ov.heat_hint")));
      for (const c of fleet.clusters) {
        const dense = c.blocks.length > DENSE_AFTER;
        body.append(
          h(
            "div",
            { class: "heat-row" },
            h("div", { class: "name" }, c.name, h("small", {}, `${c.site} · ${f.plural(c.blocks.length, "unit.block")}`), h("small", {}, `${f.int(c.busy)}/${f.gpus(c.total)} · ${f.pct(c.busy / Math.max(c.total, 1), 0)}`)),
            h(
              "div",
              { class: "cells" },
              c.blocks.map((b) =>
                heatCell(b, {
                  dense,
                  key: `${c.name}/${b.name}`,
                  label: t("ov.cell_label", { block: b.name, cluster: c.name, occ: occLabel(b), racks: f.plural(b.racks, "unit.rack") }),
                  onClick: () => drill(c.name, b.name),
                }),
              ),
            ),
          ),
        );
      }
    }
    // A national fleet has hundreds of cells: a skip link lets keyboard users pass them.
    const skip = h("a", {
      href: "#q-h",
      class: "skip-heat",
      id: "skip-heat",
      onclick: (ev) => {
        ev.preventDefault();
        const next = document.getElementById("q-h");
        next?.setAttribute("tabindex", "-1");
        next?.focus();
      },
    }, t("ov.skip_heat"));
    replace(
      heat,
      h("div", { class: "card-head" }, h("h2", { id: "heat-h" }, t("ov.heat_title"))),
      skip,
      crumbs,
      body,
      h(
        "div",
        { class: "legend" },
        h("span", {}, f.pct(0, 0), " ", h("span", { class: "scale", "aria-hidden": "true" }), " ", t("ov.busy_100", { pct: f.pct(1, 0) })),
        h("span", {}, h("span", { class: "swatch unavail" }), t("ov.all_unavail")),
        h("span", {}, h("span", { class: "swatch down" }), t("ov.has_down")),
      ),
    );
    if (focused) heat.querySelector(`[data-key="${CSS.escape(focused)}"]`)?.focus();
  }

  function drawSeries(data) {
    const pts = data.points;
    // Show the window, or only the part since the service started sampling (else a fresh
    // service draws one sliver at the right edge of an empty day).
    const now = Date.now();
    const since = pts.length ? pts[0].at_ms : now - windowS * 1000;
    const x0 = Math.max(now - windowS * 1000, since - Math.max(1e3, 0.02 * (now - since)));
    const jobsChart = lineChart({
      label: t("ov.jobs_chart", { d: f.duration(windowS) }),
      series: [
        { name: t("state.pending"), color: "#d97706", points: pts.map((p) => [p.at_ms, p.pending]) },
        { name: t("state.running"), color: "#1d4ed8", points: pts.map((p) => [p.at_ms, p.running]) },
      ],
      yFormat: (v) => f.int(v),
      yInteger: true,
      yLabel: t("ov.y_jobs"),
      x0,
      x1: now,
      empty: t("ov.no_samples"),
    });
    const cycleChart = lineChart({
      label: t("ov.cycle_chart", { d: f.duration(windowS) }),
      series: [
        { name: t("ov.mean"), color: "#059669", points: pts.map((p) => [p.at_ms, p.cycle_ms_mean]) },
        { name: t("ov.p95"), color: "#7c3aed", dash: "5 3", points: pts.map((p) => [p.at_ms, p.cycle_ms_p95]) },
      ],
      yFormat: (v) => `${f.num2(v)} ms`,
      yLabel: t("ov.y_cycle"),
      x0,
      x1: now,
    });
    const windowButtons = h(
      "div",
      { class: "window", role: "group", "aria-label": t("ov.window") },
      WINDOWS.map((secs) =>
        h("button", {
          type: "button",
          class: "secondary small",
          "aria-pressed": String(secs === windowS),
          onclick: () => {
            windowS = secs;
            syncQuery();
            refreshSeries();
          },
        }, f.duration(secs, 1)),
      ),
    );
    const last = pts.length ? pts[pts.length - 1] : null;
    replace(
      series,
      h(
        "section",
        { class: "card", "aria-labelledby": "q-h" },
        h("div", { class: "card-head" }, h("h2", { id: "q-h" }, t("ov.queue_depth")), windowButtons),
        jobsChart,
        legend([{ name: t("ov.pending_jobs"), color: "#d97706" }, { name: t("ov.running_jobs"), color: "#1d4ed8" }]),
        h("p", { class: "muted small" }, last ? t("ov.now_jobs", { pending: f.jobs(last.pending), running: f.jobs(last.running) }) : ""),
      ),
      h(
        "section",
        { class: "card", "aria-labelledby": "c-h" },
        h("div", { class: "card-head" }, h("h2", { id: "c-h" }, t("ov.cycle_time"))),
        cycleChart,
        legend([{ name: t("ov.mean_cycle"), color: "#059669" }, { name: t("ov.p95_long"), color: "#7c3aed" }]),
        h("p", { class: "muted small" }, last && last.cycle_ms_mean !== null ? t("ov.last_sample", { ms: f.ms(last.cycle_ms_mean), cycles: f.plural(last.cycles, "unit.cycle") }) : t("ov.one_point")),
      ),
    );
    return last;
  }

  function drawNodes(fleet) {
    // The fleet view lists them (down first): no scan of every node from the browser.
    const rows = fleet.unavailable_nodes;
    const count = fleet.clusters.reduce((a, c) => a + c.down + c.drained, 0);
    const more = count > rows.length;
    const undrain = async (name) => {
      try {
        await api.post(`/v1/fleet/nodes/${encodeURIComponent(name)}/undrain`, {});
        toast(t("ov.undrained", { node: name }));
        refresh();
      } catch (e) {
        toast(t("ov.undrain_failed", { node: name, error: e.explained || e.message }));
      }
    };
    const table = rows.length
      ? h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            {},
            h("caption", {}, more ? t("ov.first_of", { shown: f.int(rows.length), nodes: f.nodes(count) }) : f.nodes(count)),
            h(
              "thead",
              {},
              h("tr", {}, h("th", { scope: "col" }, t("col.node")), h("th", { scope: "col" }, t("col.cluster")), h("th", { scope: "col" }, t("col.model")), h("th", { scope: "col", class: "num" }, t("col.accelerators")), h("th", { scope: "col" }, t("col.state")), h("th", { scope: "col" }, t("col.reason")), session.can_drain ? h("th", { scope: "col" }, t("col.action")) : null),
            ),
            h(
              "tbody",
              {},
              rows.map((n) =>
                h(
                  "tr",
                  {},
                  h("th", { scope: "row", class: "mono" }, n.name),
                  h("td", {}, n.cluster),
                  h("td", {}, n.model),
                  h("td", { class: "num" }, t("ov.busy_slash", { busy: f.int(n.busy), total: f.gpus(n.gpus) })),
                  h("td", {}, h("span", { class: `badge ${n.state}` }, f.stateText(n.state))),
                  h("td", {}, n.reason || h("span", { class: "muted" }, "—")),
                  session.can_drain
                    ? h("td", {}, n.state === "drained" ? h("button", { type: "button", class: "secondary small", onclick: () => undrain(n.name) }, t("ov.undrain")) : "")
                    : null,
                ),
              ),
            ),
          ),
        )
      : h("p", { class: "okbox" }, t("ov.all_up"));
    replace(nodesBody, table);
  }

  function drainForm() {
    const name = h("input", { id: "drain-node", required: true, placeholder: t("ov.node_name"), autocomplete: "off" });
    const reason = h("input", { id: "drain-reason", placeholder: t("ov.why"), autocomplete: "off" });
    const form = h(
      "form",
      { class: "fields", "aria-label": t("ov.drain_node") },
      h("div", { class: "field" }, h("label", { for: "drain-node" }, t("ov.drain_node")), name),
      h("div", { class: "field" }, h("label", { for: "drain-reason" }, t("col.reason")), reason),
      h("button", { type: "submit", class: "secondary" }, t("ov.drain")),
    );
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const node = name.value.trim();
      if (!node) return name.focus();
      try {
        await api.post(`/v1/fleet/nodes/${encodeURIComponent(node)}/drain`, { reason: reason.value });
        toast(t("ov.drained", { node }));
        name.value = reason.value = "";
        refresh();
      } catch (e) {
        toast(t("ov.drain_failed", { node, error: e.explained || e.message }));
      }
    });
    return [h("p", { class: "muted small" }, t("ov.drain_note")), form];
  }

  // The drain form is built once, so a refresh never wipes what an admin is typing.
  nodesCard.append(h("h2", { id: "nodes-h" }, t("ov.nodes_title")), nodesBody, ...(session.can_drain ? drainForm() : []));

  let lastPoint = null;
  async function refreshSeries() {
    const data = await api.get("/v1/dashboard/series", { window_s: windowS, points: 240 });
    if (!ctx.alive()) return;
    const focused = document.activeElement?.getAttribute("aria-pressed") !== null ? document.activeElement?.textContent : null;
    lastPoint = drawSeries(data);
    if (focused) [...series.querySelectorAll(".window button")].find((b) => b.textContent === focused)?.focus();
  }

  async function refresh() {
    try {
      const fleet = await loadFleet();
      if (!ctx.alive()) return;
      drawHead(fleet);
      drawUtil(fleet);
      drawHeat(fleet);
      await refreshSeries();
      drawKpis(fleet, lastPoint);
      drawNodes(fleet);
    } catch (e) {
      if (ctx.alive()) toast(t("app.refresh_failed", { error: e.message }));
    }
  }

  await refresh();
  ctx.every(refresh, 5000);
}
