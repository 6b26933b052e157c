// Overview: utilisation by site, cluster and model; a heatmap that starts at network blocks
// (readable for a national fleet of tens of thousands of nodes) and drills down to racks and
// nodes; queue depth and loop cycle time over time; nodes drained or down.
import { api, ApiError } from "../api.js";
import { legend, lineChart, heatColor, utilBar } from "../charts.js";
import { h, replace, toast } from "../dom.js";
import * as f from "../fmt.js";

export const title = "Overview";
const WINDOWS = [
  [900, "15 min"],
  [3600, "1 h"],
  [6 * 3600, "6 h"],
  [24 * 3600, "24 h"],
];
/** Past this many blocks in a cluster, cells drop their text and become small squares. */
const DENSE_AFTER = 48;

function occLabel(o) {
  const parts = [`${f.int(o.busy)} of ${f.gpus(o.total)} busy (${f.pct(o.busy / Math.max(o.total, 1))})`];
  if (o.unavailable) parts.push(`${f.gpus(o.unavailable)} unavailable`);
  if (o.down) parts.push(`${f.nodes(o.down)} down`);
  if (o.drained) parts.push(`${f.nodes(o.drained)} drained`);
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
    h("span", {}, h("span", { class: "swatch busy" }), "busy"),
    h("span", {}, h("span", { class: "swatch unavail" }), "unavailable (drained or down)"),
    h("span", {}, h("span", { class: "swatch free" }), "free"),
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
      style: o.unavailable === o.total && o.total > 0 ? {} : { background: c.bg },
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
        h("h1", {}, "Overview"),
        h(
          "p",
          { class: "sub" },
          `Fleet ${fleet.name}: ${f.gpus(fleet.total)} on ${f.nodes(fleet.clusters.reduce((a, c) => a + c.nodes, 0))} in ${f.plural(sites, "site")} and ${f.plural(fleet.clusters.length, "cluster")}`,
        ),
      ),
      h("p", { class: "muted small" }, "Updated ", f.timeEl(h, Date.now(), "absolute"), " · refreshes every 5 s"),
    );
  }

  function drawKpis(fleet, last) {
    const down = fleet.clusters.reduce((a, c) => a + c.down, 0);
    const drained = fleet.clusters.reduce((a, c) => a + c.drained, 0);
    const kpi = (label, value, unit, hint) =>
      h("div", { class: "kpi" }, h("div", { class: "label" }, label), h("div", { class: "value" }, value, unit ? h("span", { class: "unit" }, unit) : null), hint ? h("div", { class: "hint" }, hint) : null);
    replace(
      kpis,
      kpi("Accelerators busy", f.pct(fleet.busy / Math.max(fleet.total, 1)), "", `${f.int(fleet.busy)} of ${f.gpus(fleet.total)}`),
      kpi("Jobs pending", last ? f.int(last.pending) : "—", "jobs", "waiting in the queue"),
      kpi("Jobs running", last ? f.int(last.running) : "—", "jobs", "holding accelerators"),
      kpi("Nodes drained / down", `${f.int(drained)} / ${f.int(down)}`, "nodes", `${f.gpus(fleet.unavailable)} unavailable`),
      kpi("Loop cycle", last && last.cycle_ms_mean !== null ? f.ms(last.cycle_ms_mean) : "—", "", "mean over the last sample"),
    );
  }

  function drawUtil(fleet) {
    const card = (id, heading, body) =>
      h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, heading), body, utilLegend());
    replace(
      util,
      card("u-site", "Utilisation by site", bars(fleet.sites, (o) => o.region)),
      card("u-cluster", "Utilisation by cluster", bars(fleet.clusters, (o) => o.site)),
      card("u-model", "Utilisation by accelerator model", bars(fleet.models)),
    );
  }

  function drawHeat(fleet) {
    const focused = document.activeElement?.dataset?.key;
    const crumbs = h("nav", { class: "crumbs", "aria-label": "Heatmap level" });
    const body = h("div", {});
    const drill = (c, b) => {
      cluster = c;
      block = b;
      syncQuery();
      refresh();
    };
    if (fleet.cluster && fleet.block) {
      crumbs.append(
        h("button", { type: "button", class: "link", onclick: () => drill("", "") }, "All clusters"),
        h("span", { class: "sep", "aria-hidden": "true" }, "›"),
        h("span", {}, fleet.cluster),
        h("span", { class: "sep", "aria-hidden": "true" }, "›"),
        h("strong", { "aria-current": "location" }, `block ${fleet.block}`),
      );
      const racks = fleet.racks.map((r) => {
        const prefix = sharedPrefix(r.node_cells.map((n) => n.name));
        return h(
          "div",
          { class: "rack" },
          h("h3", {}, h("span", { title: `rack ${r.name}` }, r.name, r.nvlink ? h("small", {}, " · NVLink") : null), h("small", {}, `${f.int(r.busy)}/${f.int(r.total)} GPUs`)),
          r.node_cells.map((n) =>
            h(
              "div",
              { class: "node", title: `${n.name}: ${n.busy} of ${f.gpus(n.gpus)} busy, ${n.state}${n.reason ? ` (${n.reason})` : ""}` },
              h(
                "div",
                {},
                h("div", { class: "mono" }, n.name.slice(prefix.length)),
                h(
                  "div",
                  { class: "slots", role: "img", "aria-label": `${n.name}: ${n.busy} of ${f.gpus(n.gpus)} ${n.model} busy, node ${n.state}` },
                  Array.from({ length: n.gpus }, (_, i) =>
                    h("span", { class: ["slot", i < n.busy ? "busy" : n.state !== "up" ? "unavail" : ""] }),
                  ),
                ),
              ),
              h("div", {}, n.state === "up" ? h("span", { class: "muted state" }, n.model) : h("span", { class: `badge ${n.state}` }, n.state)),
            ),
          ),
        );
      });
      body.append(h("div", { class: "racks" }, racks));
    } else {
      crumbs.append(h("strong", {}, "All clusters"), h("span", { class: "muted" }, " · one cell per network block; choose one to see its racks and nodes"));
      for (const c of fleet.clusters) {
        const dense = c.blocks.length > DENSE_AFTER;
        body.append(
          h(
            "div",
            { class: "heat-row" },
            h("div", { class: "name" }, c.name, h("small", {}, `${c.site} · ${f.plural(c.blocks.length, "block")}`), h("small", {}, `${f.int(c.busy)}/${f.gpus(c.total)} · ${f.pct(c.busy / Math.max(c.total, 1), 0)}`)),
            h(
              "div",
              { class: "cells" },
              c.blocks.map((b) =>
                heatCell(b, {
                  dense,
                  key: `${c.name}/${b.name}`,
                  label: `Block ${b.name} of cluster ${c.name}: ${occLabel(b)}, ${f.plural(b.racks, "rack")}. Show its racks.`,
                  onClick: () => drill(c.name, b.name),
                }),
              ),
            ),
          ),
        );
      }
    }
    replace(
      heat,
      h("div", { class: "card-head" }, h("h2", { id: "heat-h" }, "Heatmap: where the accelerators are busy")),
      crumbs,
      body,
      h(
        "div",
        { class: "legend" },
        h("span", {}, "0 %", " ", h("span", { class: "scale", "aria-hidden": "true" }), " ", "100 % busy"),
        h("span", {}, h("span", { class: "swatch unavail" }), "all unavailable"),
        h("span", {}, h("span", { class: "swatch down" }), "holds a node that is down"),
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
      label: `Jobs pending and running over the last ${f.duration(windowS)}`,
      series: [
        { name: "pending", color: "#d97706", points: pts.map((p) => [p.at_ms, p.pending]) },
        { name: "running", color: "#1d4ed8", points: pts.map((p) => [p.at_ms, p.running]) },
      ],
      yFormat: (v) => f.int(v),
      yInteger: true,
      yLabel: "jobs",
      x0,
      x1: now,
      empty: "No samples yet: the service samples every few seconds",
    });
    const cycleChart = lineChart({
      label: `Scheduling loop cycle time over the last ${f.duration(windowS)}`,
      series: [
        { name: "mean", color: "#059669", points: pts.map((p) => [p.at_ms, p.cycle_ms_mean]) },
        { name: "p95 (bucket bound)", color: "#7c3aed", dash: "5 3", points: pts.map((p) => [p.at_ms, p.cycle_ms_p95]) },
      ],
      yFormat: (v) => `${f.num2(v)} ms`,
      yLabel: "ms per cycle",
      x0,
      x1: now,
    });
    const windowButtons = h(
      "div",
      { class: "window", role: "group", "aria-label": "Time window" },
      WINDOWS.map(([secs, label]) =>
        h("button", {
          type: "button",
          class: "secondary small",
          "aria-pressed": String(secs === windowS),
          onclick: () => {
            windowS = secs;
            syncQuery();
            refreshSeries();
          },
        }, label),
      ),
    );
    const last = pts.length ? pts[pts.length - 1] : null;
    replace(
      series,
      h(
        "section",
        { class: "card", "aria-labelledby": "q-h" },
        h("div", { class: "card-head" }, h("h2", { id: "q-h" }, "Queue depth"), windowButtons),
        jobsChart,
        legend([{ name: "pending jobs", color: "#d97706" }, { name: "running jobs", color: "#1d4ed8" }]),
        h("p", { class: "muted small" }, last ? `Now: ${f.jobs(last.pending)} pending, ${f.jobs(last.running)} running.` : ""),
      ),
      h(
        "section",
        { class: "card", "aria-labelledby": "c-h" },
        h("div", { class: "card-head" }, h("h2", { id: "c-h" }, "Scheduling cycle time")),
        cycleChart,
        legend([{ name: "mean cycle time", color: "#059669" }, { name: "95th percentile (upper bound)", color: "#7c3aed" }]),
        h("p", { class: "muted small" }, last && last.cycle_ms_mean !== null ? `Last sample: ${f.ms(last.cycle_ms_mean)} mean over ${f.plural(last.cycles, "cycle")}.` : "One point per sample of the service's metrics."),
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
        toast(`Node ${name} is back in service.`);
        refresh();
      } catch (e) {
        toast(`Could not undrain ${name}: ${e.explained || e.message}`);
      }
    };
    const table = rows.length
      ? h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            {},
            h("caption", {}, more ? `The first ${f.int(rows.length)} of ${f.nodes(count)}` : f.nodes(count)),
            h(
              "thead",
              {},
              h("tr", {}, h("th", { scope: "col" }, "Node"), h("th", { scope: "col" }, "Cluster"), h("th", { scope: "col" }, "Model"), h("th", { scope: "col", class: "num" }, "Accelerators"), h("th", { scope: "col" }, "State"), h("th", { scope: "col" }, "Reason"), session.can_drain ? h("th", { scope: "col" }, "Action") : null),
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
                  h("td", { class: "num" }, `${f.int(n.busy)} busy / ${f.gpus(n.gpus)}`),
                  h("td", {}, h("span", { class: `badge ${n.state}` }, n.state)),
                  h("td", {}, n.reason || h("span", { class: "muted" }, "—")),
                  session.can_drain
                    ? h("td", {}, n.state === "drained" ? h("button", { type: "button", class: "secondary small", onclick: () => undrain(n.name) }, "Undrain") : "")
                    : null,
                ),
              ),
            ),
          ),
        )
      : h("p", { class: "okbox" }, "Every node is up.");
    replace(nodesBody, table);
  }

  function drainForm() {
    const name = h("input", { id: "drain-node", required: true, placeholder: "node name", autocomplete: "off" });
    const reason = h("input", { id: "drain-reason", placeholder: "why (shown to users)", autocomplete: "off" });
    const form = h(
      "form",
      { class: "fields", "aria-label": "Drain a node" },
      h("div", { class: "field" }, h("label", { for: "drain-node" }, "Drain a node"), name),
      h("div", { class: "field" }, h("label", { for: "drain-reason" }, "Reason"), reason),
      h("button", { type: "submit", class: "secondary" }, "Drain"),
    );
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const node = name.value.trim();
      if (!node) return name.focus();
      try {
        await api.post(`/v1/fleet/nodes/${encodeURIComponent(node)}/drain`, { reason: reason.value });
        toast(`Node ${node} drained: running work finishes, nothing new starts.`);
        name.value = reason.value = "";
        refresh();
      } catch (e) {
        toast(`Could not drain ${node}: ${e.explained || e.message}`);
      }
    });
    return [h("p", { class: "muted small" }, "Pool admins: draining lets running jobs finish and starts nothing new on the node."), form];
  }

  // The drain form is built once, so a refresh never wipes what an admin is typing.
  nodesCard.append(h("h2", { id: "nodes-h" }, "Nodes drained or down"), nodesBody, ...(session.can_drain ? drainForm() : []));

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
      if (ctx.alive()) toast(`Refresh failed: ${e.message}`);
    }
  }

  await refresh();
  ctx.every(refresh, 5000);
}
