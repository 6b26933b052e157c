// What-if: run the digital twin on a fleet, tenants and workload under a few policies, in the
// background on the service; follow its progress; read its headline metrics and the figures
// of its report (the same report `gpupool compare --out` writes); compare runs side by side.
// For viewers and pool admins, as the API allows.
import { api, ApiError } from "../api.js";
import { field, h, replace, select, toast } from "../dom.js";
import * as f from "../fmt.js";

export const title = "What-if";
export const allowed = (session) => session.can_whatif;
export const refusal = "What-if studies are open to viewers and pool admins.";

/** Headline metrics: key, label, formatter, and whether lower is better (to mark the best). */
const METRICS = [
  ["jobs", "Jobs", f.int, null],
  ["finished", "Finished", f.int, false],
  ["unschedulable", "Unschedulable", f.int, true],
  ["avg_jct_s", "Mean JCT", (v) => f.duration(v), true],
  ["p50_jct_s", "Median JCT", (v) => f.duration(v), true],
  ["p99_jct_s", "p99 JCT", (v) => f.duration(v), true],
  ["avg_queue_s", "Mean queueing delay", (v) => f.duration(v), true],
  ["p99_queue_s", "p99 queueing delay", (v) => f.duration(v), true],
  ["makespan_s", "Makespan", (v) => f.duration(v), true],
  ["utilization", "Utilisation", (v) => f.pct(v), false],
  ["jain_fairness", "Jain fairness (1 = fair)", (v) => f.num2(v), false],
  ["preemptions", "Preemptions", f.int, true],
  ["gpu_hours", "GPU-hours used", f.gpuHours, null],
  ["lost_gpu_hours", "GPU-hours lost to preemption", f.gpuHours, true],
  ["cycle_ms_p99", "Scheduler cycle p99", f.ms, true],
  ["wall_s", "Simulation wall time", (v) => `${f.num2(v)} s`, null],
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
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Metric"), columns.map((c) => h("th", { scope: "col", class: "num" }, c.label)))),
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

function specText(spec) {
  const wl = spec.workload === "synthetic" ? `synthetic ${f.pct(spec.load, 0)} load, ${f.num2(spec.hours)} h, seed ${spec.seed}` : spec.workload;
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
      h("div", {}, h("h1", {}, "What-if studies"), h("p", { class: "sub" }, "Simulate a fleet, its tenants and a workload under several policies, without touching the live pool")),
    ),
  );

  // ---- the form
  const fleet = select({ id: "w-fleet" }, opts.fleets, opts.default_fleet || opts.fleets[0]);
  const tenants = select({ id: "w-tenants" }, [["", "the fleet's own"], ...opts.tenants], "");
  const workload = select({ id: "w-workload" }, opts.workloads.map((w) => [w, w === "synthetic" ? "synthetic (Philly-calibrated)" : w]), "synthetic");
  const load = h("input", { id: "w-load", type: "number", min: 5, max: opts.max_load * 100, step: 5, value: 80, inputmode: "numeric" });
  const hours = h("input", { id: "w-hours", type: "number", min: 0.5, max: opts.max_hours, step: 0.5, value: 6, inputmode: "decimal" });
  const seed = h("input", { id: "w-seed", type: "number", min: 0, value: 0, inputmode: "numeric" });
  const runTitle = h("input", { id: "w-title", maxlength: 120, placeholder: "e.g. startups get 15 % guaranteed", size: 34 });
  const defaults = new Set(["fifo", "fairshare+easy"]);
  const policies = h(
    "fieldset",
    { class: "checks", id: "w-policies" },
    h("legend", {}, `Policies (1 to ${opts.max_policies}; "+easy" adds EASY backfilling)`),
    opts.policies.map((p) => h("label", {}, h("input", { type: "checkbox", name: "policy", value: p, checked: defaults.has(p) }), p)),
  );
  const syntheticOnly = [load, hours, seed];
  workload.addEventListener("change", () => {
    for (const el of syntheticOnly) el.disabled = workload.value !== "synthetic";
  });
  const msg = h("div", { role: "status", "aria-live": "polite" });
  const runButton = h("button", { type: "submit", id: "w-run" }, "Run simulation");
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "w-form-h" },
    h("h2", { id: "w-form-h" }, "New study"),
    h(
      "div",
      { class: "fields" },
      field("Fleet", fleet),
      field("Tenants", tenants),
      field("Workload", workload),
      field("Offered load (%)", load),
      field("Length (hours)", hours),
      field("Seed", seed),
      field("Title", runTitle),
    ),
    h("div", { class: "fields" }, policies),
    h("div", { class: "actions" }, runButton, h("span", { class: "muted small" }, `At most ${f.jobs(opts.max_jobs)} and ${f.duration(opts.max_wall_s)} of computing; one study at a time.`)),
    msg,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const chosen = [...policies.querySelectorAll("input:checked")].map((i) => i.value);
    if (!chosen.length || chosen.length > opts.max_policies) {
      replace(msg, h("p", { class: "error" }, `Choose 1 to ${opts.max_policies} policies.`));
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
      toast("Simulation started.");
      select_(run.id);
    } catch (e) {
      replace(msg, h("p", { class: "error", role: "alert" }, e instanceof ApiError ? e.explained : e.message));
    } finally {
      runButton.disabled = false;
    }
  });

  const runsCard = h("section", { class: "card", "aria-labelledby": "w-runs-h" });
  const view = h("section", { class: "card", "aria-labelledby": "w-view-h", hidden: true, id: "w-view" });
  const cmp = h("section", { class: "card", "aria-labelledby": "w-cmp-h", hidden: true, id: "w-compare" });
  // viewers read studies; only a pool admin starts or stops one (ADR 0007)
  const canStart = Boolean(ctx.session && ctx.session.can_start_whatif);
  const readOnly = h("p", { class: "notice", id: "w-readonly" }, "You may read these studies; a pool admin starts and stops them.");
  root.append(canStart ? form : readOnly, runsCard, view, cmp);

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
            h("caption", {}, "Tick two or more finished runs to compare them."),
            h(
              "thead",
              {},
              h("tr", {}, ["Compare", "Study", "Scenario", "Policies", "State", "Started", "By", ""].map((c) => h("th", { scope: "col" }, c))),
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
                      "aria-label": `Compare ${r.spec.title || r.id}`,
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
                  h("td", {}, h("span", { class: `badge ${r.state === "done" ? "done" : r.state === "failed" ? "failed" : "running"}` }, r.state)),
                  h("td", { class: "num" }, f.timeEl(h, r.created_ms)),
                  h("td", {}, r.owner),
                  h("td", {}, h("button", { type: "button", class: "secondary small", "data-key": `open-${r.id}`, onclick: () => select_(r.id) }, r.id === selected ? "Shown" : "Open")),
                ),
              ),
            ),
          ),
        )
      : h("p", { class: "muted" }, "No studies yet.");
    const focused = document.activeElement?.dataset?.key;
    replace(runsCard, h("h2", { id: "w-runs-h" }, "Studies"), body);
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
    replace(cmp, h("h2", { id: "w-cmp-h" }, `Comparing ${chosen.length} studies`), metricsTable(columns, "Green: best in the row (where the values differ)."));
  }

  async function drawView(run) {
    if (!run) {
      view.hidden = true;
      return;
    }
    view.hidden = false;
    const headline = h("div", { class: "card-head" }, h("h2", { id: "w-view-h", tabindex: "-1" }, run.spec.title || run.id), h("span", { class: `badge ${run.state === "done" ? "done" : run.state === "failed" ? "failed" : "running"}` }, run.state));
    if (run.state === "running") {
      const p = run.progress || {};
      const overall = p.total ? ((p.policy_index || 0) + p.done / p.total) / (p.policies || 1) : 0;
      const cancel = h("button", { type: "button", class: "secondary small", onclick: async () => {
        try {
          await api.post(`/v1/whatif/${run.id}/cancel`);
          toast("Stopping the study.");
        } catch (e) {
          toast(e.message);
        }
      } }, "Stop");
      replace(
        view,
        headline,
        h("p", {}, specText(run.spec), " · ", (run.spec.policies || []).join(", ")),
        h("label", { for: "w-progress" }, p.stage ? `${p.stage}${p.total ? `: ${f.int(p.done)} of ${f.jobs(p.total)}` : ""}` : "starting…"),
        h("progress", { id: "w-progress", max: 1, value: overall }, f.pct(overall, 0)),
        canStart ? h("div", { class: "actions" }, cancel) : null,
      );
      shownState = "running";
      return;
    }
    if (run.state === "failed") {
      replace(view, headline, h("p", {}, specText(run.spec)), h("pre", { class: "log" }, run.error || "failed"));
      shownState = "failed";
      return;
    }
    if (shownState === `done:${run.id}`) return; // figures are large: draw them once
    shownState = `done:${run.id}`;
    const r = run.result;
    const download = h("button", { type: "button", class: "secondary" }, "Download report.html");
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
    const figs = h("div", { class: "figures", id: "w-figures" }, h("p", { class: "muted" }, "Loading figures…"));
    replace(
      view,
      headline,
      h("dl", { class: "facts" }, Object.entries(r.context).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      h("h3", {}, "Headline"),
      metricsTable(r.policies.map((p) => ({ label: p, metrics: r.metrics[p] })), `${f.jobs(r.jobs)} simulated in ${f.num2(r.wall_s)} s. Green: best in the row.`),
      h("h3", {}, "Figures"),
      figs,
      h("div", { class: "actions" }, download, h("span", { class: "muted small" }, "The full report: tables per tenant and sector, metrics.json's numbers, every figure.")),
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
    const busy = runs.some((r) => r.state === "running");
    runButton.disabled = busy;
    runButton.textContent = busy ? "A study is running…" : "Run simulation";
    await drawView(run);
    if (cmp.hidden === false || compare.size >= 2) drawCompare();
  }

  await refresh();
  // Poll fast while a study runs, slowly otherwise.
  let ticks = 0;
  ctx.every(() => {
    ticks += 1;
    if (runs.some((r) => r.state === "running") || ticks % 10 === 0) refresh();
  }, 1000);
}
