// What-if: run the digital twin on a fleet, tenants and workload under a few policies, in the
// background on the service; follow its progress; read its headline metrics and the figures
// of its report (the same report `gpupool compare --out` writes); compare runs side by side.
// For viewers and pool admins, as the API allows.
import { api, ApiError } from "../api.js";
import { field, h, replace, select, toast } from "../dom.js";
import * as f from "../fmt.js";
import { t } from "../i18n.js";

export const title = () => t("nav.whatif");
export const allowed = (session) => session.can_whatif;
export const refusal = () => t("wi.refusal");

/** Headline metrics: key, label, formatter, and whether lower is better (to mark the best). */
const METRICS = [
  ["jobs", t("wi.m.jobs"), f.int, null],
  ["finished", t("wi.m.finished"), f.int, false],
  ["unschedulable", t("wi.m.unschedulable"), f.int, true],
  ["avg_jct_s", t("wi.m.avg_jct"), (v) => f.duration(v), true],
  ["p50_jct_s", t("wi.m.p50_jct"), (v) => f.duration(v), true],
  ["p99_jct_s", t("wi.m.p99_jct"), (v) => f.duration(v), true],
  ["avg_queue_s", t("wi.m.avg_queue"), (v) => f.duration(v), true],
  ["p99_queue_s", t("wi.m.p99_queue"), (v) => f.duration(v), true],
  ["makespan_s", t("wi.m.makespan"), (v) => f.duration(v), true],
  ["utilization", t("wi.m.util"), (v) => f.pct(v), false],
  ["jain_fairness", t("wi.m.jain"), (v) => f.num2(v), false],
  ["preemptions", t("wi.m.preemptions"), f.int, true],
  ["gpu_hours", t("wi.m.gpu_hours"), f.gpuHours, null],
  ["lost_gpu_hours", t("wi.m.lost"), f.gpuHours, true],
  ["cycle_ms_p99", t("wi.m.cycle"), f.ms, true],
  ["wall_s", t("wi.m.wall"), (v) => `${f.num2(v)} s`, null],
];

function metricsTable(columns, caption) {
  // columns: [{label, metrics}]
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "metrics" },
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("wi.metric")), columns.map((c) => h("th", { scope: "col", class: "num" }, c.label)))),
      h(
        "tbody",
        {},
        METRICS.map(([key, label, fmt, lowerBetter]) => {
          const vals = columns.map((c) => c.metrics[key]);
          const nums = vals.filter((v) => v !== null && v !== undefined);
          const best = lowerBetter === null || nums.length < 2 ? null : lowerBetter ? Math.min(...nums) : Math.max(...nums);
          const differ = new Set(nums).size > 1;
          return h(
            "tr",
            {},
            h("th", { scope: "row" }, label),
            vals.map((v) => h("td", { class: ["num", differ && v === best ? "best" : ""] }, v === null || v === undefined ? "—" : fmt(v))),
          );
        }),
      ),
    ),
  );
}

/** The live study's side-by-side table: baseline and change per row of the result's compare. */
function liveResult(r) {
  const fmtOf = (what, v) => {
    if (v === null || v === undefined) return "—";
    if (what.endsWith("_s") || what.endsWith("wait s")) return f.duration(v);
    if (what === "utilization") return f.pct(v);
    if (what === "jain_fairness") return f.num2(v);
    return f.int(v);
  };
  return h(
    "div",
    { id: "w-live-result" },
    h("p", {}, (r.changes.length ? r.changes.join("; ") : t("wi.live.nochange")) + ` · ${r.policy} · ${f.duration(r.hours * 3600)}`),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "metrics" },
        h("caption", {}, t("wi.live.caption", { s: f.num2(r.wall_s) })),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("wi.metric")), h("th", { scope: "col", class: "num" }, t("wi.live.baseline")), h("th", { scope: "col", class: "num" }, t("wi.live.change")))),
        h("tbody", {}, r.compare.map((row) => h("tr", {}, h("th", { scope: "row" }, row.what), h("td", { class: "num" }, fmtOf(row.what, row.baseline)), h("td", { class: "num" }, fmtOf(row.what, row.change))))),
      ),
    ),
  );
}

/** The live study's form: each change is built from the live fleet's clusters and models and
 *  the tenants' paths (no YAML); an empty count or value leaves that change out. */
function buildLiveForm(live, started) {
  const pools = live.pools || [];
  const num = (id, attrs = {}) => h("input", { id, type: "number", min: 0, inputmode: "numeric", size: 6, ...attrs });
  const addC = select({ id: "l-add-cluster" }, live.clusters, live.clusters[0]);
  const addM = select({ id: "l-add-model" }, live.models, live.models[0]);
  const addN = num("l-add-count");
  const addG = num("l-add-gpus", { value: 8, min: 1 });
  const rmC = select({ id: "l-rm-cluster" }, live.clusters, live.clusters[0]);
  const rmM = select({ id: "l-rm-model" }, live.models, live.models[0]);
  const rmN = num("l-rm-count");
  const mvFrom = select({ id: "l-mv-from" }, live.clusters, live.clusters[0]);
  const mvTo = select({ id: "l-mv-to" }, live.clusters, live.clusters[live.clusters.length - 1]);
  const mvM = select({ id: "l-mv-model" }, live.models, live.models[0]);
  const mvN = num("l-mv-count");
  const gP = select({ id: "l-g-project" }, [["", "—"], ...live.projects], "");
  const gM = select({ id: "l-g-model" }, live.models, live.models[0]);
  const gN = num("l-g-gpus");
  const wT = select({ id: "l-w-tenant" }, [["", "—"], ...live.tenants], "");
  const wV = h("input", { id: "l-w-weight", type: "number", min: 0.1, step: 0.1, size: 6 });
  const aP = select({ id: "l-a-project" }, [["", "—"], ...live.projects], "");
  const aH = num("l-a-hours");
  const scale = h("input", { id: "l-scale", type: "number", min: 10, max: live.max_scale * 100, step: 10, value: 100, size: 6 });
  const hours = h("input", { id: "l-hours", type: "number", min: 0.5, max: 336, step: 0.5, value: 24, size: 6 });
  const title = h("input", { id: "l-title", maxlength: 120, size: 34, placeholder: t("wi.title_example") });
  const msg = h("div", { role: "status", "aria-live": "polite" });
  const button = h("button", { type: "submit", id: "l-run" }, t("wi.live.run"));
  const row = (legend, ...controls) => h("fieldset", { class: "fields" }, h("legend", {}, legend), controls);
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "l-form-h", id: "w-live-form" },
    h("h2", { id: "l-form-h" }, t("wi.live.title")),
    h("p", { class: "sub" }, t("wi.live.sub", { pools: f.int(pools.length) })),
    row(t("wi.live.add"), field(t("wi.live.cluster"), addC), field(t("wi.live.model"), addM), field(t("wi.live.nodes"), addN), field(t("wi.live.gpus"), addG)),
    row(t("wi.live.remove"), field(t("wi.live.cluster"), rmC), field(t("wi.live.model"), rmM), field(t("wi.live.nodes"), rmN)),
    row(t("wi.live.move"), field(t("wi.live.from"), mvFrom), field(t("wi.live.to"), mvTo), field(t("wi.live.model"), mvM), field(t("wi.live.nodes"), mvN)),
    row(t("wi.live.guarantee"), field(t("wi.live.project"), gP), field(t("wi.live.model"), gM), field(t("wi.live.gpus"), gN)),
    row(t("wi.live.weight"), field(t("wi.live.tenant"), wT), field(t("wi.live.weight_value"), wV)),
    row(t("wi.live.award"), field(t("wi.live.project"), aP), field(t("wi.live.gpu_hours"), aH)),
    h("div", { class: "fields" }, field(t("wi.live.scale"), scale), field(t("wi.hours"), hours), field(t("wi.run_title"), title)),
    h("div", { class: "actions" }, button),
    msg,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const n = (el) => (el.value === "" ? 0 : Number(el.value));
    const changes = { scale_load: n(scale) / 100 };
    if (n(addN) > 0) changes.add_nodes = [`${addC.value}:${addM.value}:${n(addN)}:${n(addG) || 8}`];
    if (n(rmN) > 0) changes.remove_nodes = [`${rmC.value}:${rmM.value}:${n(rmN)}`];
    if (n(mvN) > 0) changes.move_nodes = [`${mvFrom.value}:${mvTo.value}:${mvM.value}:${n(mvN)}`];
    if (gP.value && gN.value !== "") changes.guarantees = [`${gP.value}:${gM.value}:${n(gN)}`];
    if (wT.value && wV.value !== "") changes.weights = [`${wT.value}:${wV.value}`];
    if (aP.value && n(aH) > 0) changes.awards = [`${aP.value}:${n(aH)}`];
    button.disabled = true;
    try {
      const run = await api.post("/v1/whatif", { source: "live", changes, hours: Number(hours.value), title: title.value.trim() });
      replace(msg);
      toast(t("wi.started"));
      started(run);
    } catch (e) {
      replace(msg, h("p", { class: "error", role: "alert" }, e instanceof ApiError ? e.explained : e.message));
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function specText(spec) {
  if (spec.source === "live") return t("wi.live.spec", { w: spec.workload, h: f.duration(spec.hours * 3600) });
  const wl = spec.workload === "synthetic" ? t("wi.synthetic_spec", { load: f.pct(spec.load, 0), hours: f.duration(spec.hours * 3600), seed: spec.seed }) : spec.workload;
  return `${spec.fleet}${spec.tenants ? ` / ${spec.tenants}` : ""} · ${wl}`;
}

export async function render(ctx) {
  const { root } = ctx;
  const opts = await api.get("/v1/whatif/options");
  let selected = ctx.args[0] || "";
  const compare = new Set();

  root.append(
    h(
      "div",
      { class: "page-head" },
      h("div", {}, h("h1", {}, t("wi.title")), h("p", { class: "sub" }, t("wi.sub"))),
    ),
  );

  // ---- the form
  const fleet = select({ id: "w-fleet" }, opts.fleets, opts.default_fleet || opts.fleets[0]);
  const tenants = select({ id: "w-tenants" }, [["", t("wi.fleet_own")], ...opts.tenants], "");
  const workload = select({ id: "w-workload" }, opts.workloads.map((w) => [w, w === "synthetic" ? t("wi.synthetic") : w]), "synthetic");
  const load = h("input", { id: "w-load", type: "number", min: 5, max: opts.max_load * 100, step: 5, value: 80, inputmode: "numeric" });
  const hours = h("input", { id: "w-hours", type: "number", min: 0.5, max: opts.max_hours, step: 0.5, value: 6, inputmode: "decimal" });
  const seed = h("input", { id: "w-seed", type: "number", min: 0, value: 0, inputmode: "numeric" });
  const runTitle = h("input", { id: "w-title", maxlength: 120, placeholder: t("wi.title_example"), size: 34 });
  const defaults = new Set(["fifo", "fairshare+easy"]);
  const policies = h(
    "fieldset",
    { class: "checks", id: "w-policies" },
    h("legend", {}, t("wi.policies_legend", { max: opts.max_policies })),
    opts.policies.map((p) => h("label", {}, h("input", { type: "checkbox", name: "policy", value: p, checked: defaults.has(p) }), p)),
  );
  const syntheticOnly = [load, hours, seed];
  workload.addEventListener("change", () => {
    for (const el of syntheticOnly) el.disabled = workload.value !== "synthetic";
  });
  const msg = h("div", { role: "status", "aria-live": "polite" });
  const runButton = h("button", { type: "submit", id: "w-run" }, t("wi.run"));
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "w-form-h" },
    h("h2", { id: "w-form-h" }, t("wi.new")),
    h(
      "div",
      { class: "fields" },
      field(t("wi.fleet"), fleet),
      field(t("nav.tenants"), tenants),
      field(t("wi.workload"), workload),
      field(t("wi.load"), load),
      field(t("wi.hours"), hours),
      field(t("wi.seed"), seed),
      field(t("wi.run_title"), runTitle),
    ),
    h("div", { class: "fields" }, policies),
    h("div", { class: "actions" }, runButton, h("span", { class: "muted small" }, t("wi.limits_queue", { d: f.duration(opts.max_wall_s), n: f.int(opts.workers) }))),
    msg,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const chosen = [...policies.querySelectorAll("input:checked")].map((i) => i.value);
    if (!chosen.length || chosen.length > opts.max_policies) {
      replace(msg, h("p", { class: "error" }, t("wi.choose", { max: opts.max_policies })));
      return policies.querySelector("input")?.focus();
    }
    const body = {
      fleet: fleet.value,
      tenants: tenants.value || null,
      workload: workload.value,
      load: Number(load.value) / 100,
      hours: Number(hours.value),
      seed: Number(seed.value),
      policies: chosen,
      title: runTitle.value.trim(),
    };
    runButton.disabled = true;
    try {
      const run = await api.post("/v1/whatif", body);
      replace(msg);
      toast(t("wi.started"));
      select_(run.id);
    } catch (e) {
      replace(msg, h("p", { class: "error", role: "alert" }, e instanceof ApiError ? e.explained : e.message));
    } finally {
      runButton.disabled = false;
    }
  });

  const liveForm = buildLiveForm(opts.live, (run) => select_(run.id));

  const runsCard = h("section", { class: "card", "aria-labelledby": "w-runs-h" });
  const view = h("section", { class: "card", "aria-labelledby": "w-view-h", hidden: true, id: "w-view" });
  const cmp = h("section", { class: "card", "aria-labelledby": "w-cmp-h", hidden: true, id: "w-compare" });
  // viewers read studies; only a pool admin starts or stops one (ADR 0007)
  const canStart = Boolean(ctx.session && ctx.session.can_start_whatif);
  const readOnly = h("p", { class: "notice", id: "w-readonly" }, t("wi.readonly"));
  root.append(...(canStart ? [liveForm, form] : [readOnly]), runsCard, view, cmp);

  let runs = [];
  let shownState = "";

  function select_(id) {
    selected = id;
    shownState = "";
    history.replaceState(null, "", `#/whatif/${encodeURIComponent(id)}`);
    refresh().then(() => view.querySelector("h2")?.focus());
  }

  function drawRuns() {
    const body = runs.length
      ? h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            {},
            h("caption", {}, t("wi.tick")),
            h(
              "thead",
              {},
              h("tr", {}, ["wi.compare", "wi.study", "wi.scenario", "wi.policies", "col.state", "col.started", "wi.by"].map((c) => h("th", { scope: "col" }, t(c))), h("th", { scope: "col" })),
            ),
            h(
              "tbody",
              {},
              runs.map((r) =>
                h(
                  "tr",
                  { "data-run": r.id },
                  h(
                    "td",
                    {},
                    h("input", {
                      type: "checkbox",
                      "aria-label": t("wi.compare_x", { name: r.spec.title || r.id }),
                      disabled: r.state !== "done",
                      checked: compare.has(r.id),
                      "data-key": `cmp-${r.id}`,
                      onchange: (ev) => {
                        if (ev.target.checked) compare.add(r.id);
                        else compare.delete(r.id);
                        drawCompare();
                      },
                    }),
                  ),
                  h("th", { scope: "row" }, r.spec.title || r.id, h("span", { class: "path" }, r.id)),
                  h("td", {}, specText(r.spec)),
                  h("td", {}, (r.spec.policies || []).join(", ")),
                  h("td", {}, h("span", { class: `badge ${r.state === "done" ? "done" : r.state === "failed" ? "failed" : "running"}` }, r.state === "queued" ? t("wi.queued_short") : f.stateText(r.state))),
                  h("td", { class: "num" }, f.timeEl(h, r.created_ms)),
                  h("td", {}, r.owner),
                  h("td", {}, h("button", { type: "button", class: "secondary small", "data-key": `open-${r.id}`, onclick: () => select_(r.id) }, r.id === selected ? t("wi.shown") : t("wi.open"))),
                ),
              ),
            ),
          ),
        )
      : h("p", { class: "muted" }, t("wi.none"));
    const focused = document.activeElement?.dataset?.key;
    replace(runsCard, h("h2", { id: "w-runs-h" }, t("wi.studies")), body);
    if (focused) runsCard.querySelector(`[data-key="${CSS.escape(focused)}"]`)?.focus();
  }

  async function drawCompare() {
    const chosen = runs.filter((r) => compare.has(r.id) && r.state === "done");
    if (chosen.length < 2) {
      cmp.hidden = true;
      return;
    }
    const columns = chosen.flatMap((r) =>
      r.result.policies.map((p) => ({ label: `${r.spec.title || r.id} · ${p}`, metrics: r.result.metrics[p] })),
    );
    cmp.hidden = false;
    replace(cmp, h("h2", { id: "w-cmp-h" }, t("wi.comparing", { n: chosen.length, count: f.int(chosen.length) })), metricsTable(columns, t("wi.green")));
  }

  async function drawView(run) {
    if (!run) {
      view.hidden = true;
      return;
    }
    view.hidden = false;
    const headline = h("div", { class: "card-head" }, h("h2", { id: "w-view-h", tabindex: "-1" }, run.spec.title || run.id), h("span", { class: `badge ${run.state === "done" ? "done" : run.state === "failed" ? "failed" : "running"}` }, f.stateText(run.state)));
    if (run.state === "queued") {
      replace(view, headline, h("p", { id: "w-queued" }, t("wi.queued", { n: f.int(run.queue_position || 1) })));
      shownState = "queued";
      return;
    }
    if (run.state === "running") {
      const p = run.progress || {};
      const overall = p.total ? ((p.policy_index || 0) + p.done / p.total) / (p.policies || 1) : 0;
      const cancel = h("button", { type: "button", class: "secondary small", onclick: async () => {
        try {
          await api.post(`/v1/whatif/${run.id}/cancel`);
          toast(t("wi.stopping"));
        } catch (e) {
          toast(e.message);
        }
      } }, t("wi.stop"));
      replace(
        view,
        headline,
        h("p", {}, specText(run.spec), " · ", (run.spec.policies || []).join(", ")),
        h("label", { for: "w-progress" }, p.stage ? `${p.stage}${p.total ? `: ${t("wi.progress", { done: f.int(p.done), total: f.jobs(p.total) })}` : ""}` : t("wi.starting")),
        h("progress", { id: "w-progress", max: 1, value: overall }, f.pct(overall, 0)),
        canStart ? h("div", { class: "actions" }, cancel) : null,
      );
      shownState = "running";
      return;
    }
    if (run.state === "failed") {
      replace(view, headline, h("p", {}, specText(run.spec)), h("pre", { class: "log" }, run.error || t("state.failed")));
      shownState = "failed";
      return;
    }
    if (shownState === `done:${run.id}`) return; // figures are large: draw them once
    shownState = `done:${run.id}`;
    const r = run.result;
    if (r.kind === "live") {
      replace(view, headline, liveResult(r));
      return;
    }
    const download = h("button", { type: "button", class: "secondary" }, t("wi.download"));
    download.addEventListener("click", async () => {
      // The report needs the token, so it cannot be a plain link: fetch it, then save the blob.
      const blob = await api.blob(`/v1/whatif/${run.id}/report.html`);
      const url = URL.createObjectURL(blob);
      const a = h("a", { href: url, download: `gpupool-${run.id}.html` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    });
    const figs = h("div", { class: "figures", id: "w-figures" }, h("p", { class: "muted" }, t("wi.loading_figs")));
    replace(
      view,
      headline,
      h("dl", { class: "facts" }, Object.entries(r.context).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      h("h3", {}, t("wi.headline")),
      metricsTable(r.policies.map((p) => ({ label: p, metrics: r.metrics[p] })), t("wi.simulated", { jobs: f.jobs(r.jobs), s: f.num2(r.wall_s) })),
      h("h3", {}, t("wi.figures")),
      figs,
      h("div", { class: "actions" }, download, h("span", { class: "muted small" }, t("wi.full_report"))),
    );
    const figures = await api.get(`/v1/whatif/${run.id}/figures`);
    if (!ctx.alive()) return;
    replace(
      figs,
      figures.map((fig) =>
        h("figure", {}, fig.src ? h("img", { src: fig.src, alt: fig.alt, loading: "lazy" }) : h("p", { class: "muted" }, fig.empty), h("figcaption", {}, fig.alt ? [h("strong", {}, fig.alt), ". "] : null, fig.caption)),
      ),
    );
  }

  async function refresh() {
    runs = await api.get("/v1/whatif");
    if (!ctx.alive()) return;
    drawRuns();
    const run = runs.find((r) => r.id === selected) || null;
    // studies queue for the background workers: the button stays usable while one runs
    await drawView(run);
    if (cmp.hidden === false || compare.size >= 2) drawCompare();
  }

  await refresh();
  // Poll fast while a study runs, slowly otherwise.
  let ticks = 0;
  ctx.every(() => {
    ticks += 1;
    if (runs.some((r) => r.state === "running" || r.state === "queued") || ticks % 10 === 0) refresh();
  }, 1000);
}
