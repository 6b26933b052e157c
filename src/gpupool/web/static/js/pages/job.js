// One job: why it waits (or how it ended), its timeline of attempts (submitted, started,
// preempted, resumed, finished), where it runs in the topology, its log tail, and GPU
// telemetry where the executor records some. The cancel button shows only if the API would
// accept the cancellation (the caller is in the job's project, or a pool admin).
import { api, ApiError } from "../api.js";
import { COLORS, legend, lineChart } from "../charts.js";
import { h, replace, s, select, toast } from "../dom.js";
import * as f from "../fmt.js";

export const title = "Job";

const EVENT_COLORS = {
  submitted: "#64748b",
  started: "#1d4ed8",
  resumed: "#1d4ed8",
  preempted: "#d97706",
  completed: "#166534",
  failed: "#991b1b",
  cancelled: "#475569",
  rejected: "#991b1b",
};

function timelineSvg(d, now) {
  const W = 760;
  const H = 74;
  const m = { l: 12, r: 12 };
  const t0 = d.job.submit_ms;
  const t1 = Math.max(d.job.end_ms ?? now, t0 + 1000);
  const X = (t) => m.l + ((t - t0) / (t1 - t0)) * (W - m.l - m.r);
  const svg = s("svg", {
    class: "chart",
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-label": `Timeline from ${f.datetime(t0)} to ${f.datetime(t1)}: ${f.plural(d.attempts.length, "attempt")}`,
  });
  svg.append(s("line", { x1: m.l, x2: W - m.r, y1: 30, y2: 30, stroke: "#c4cad4", "stroke-width": 2 }));
  for (const a of d.attempts) {
    const x0 = X(a.start_ms);
    const x1 = X(a.end_ms ?? Math.min(now, t1));
    svg.append(s("rect", { x: x0, y: 22, width: Math.max(2, x1 - x0), height: 16, rx: 3, fill: "#93b4f5" }, s("title", {}, `attempt ${a.attempt}: ${f.duration(((a.end_ms ?? now) - a.start_ms) / 1000)} on ${a.model}`)));
  }
  for (const e of d.timeline) {
    svg.append(s("circle", { cx: X(e.at_ms), cy: 30, r: 5, fill: EVENT_COLORS[e.what] || "#334155" }, s("title", {}, `${e.what} at ${f.datetime(e.at_ms)}`)));
  }
  svg.append(
    s("text", { x: m.l, y: 62 }, f.datetime(t0)),
    s("text", { x: W - m.r, y: 62, "text-anchor": "end" }, d.job.end_ms ? f.datetime(t1) : `now (${f.datetime(t1)})`),
  );
  return svg;
}

/** An argument as a POSIX shell would need it typed (the inverse of the queue form's split). */
function shellQuote(arg) {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`;
}

function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
  );
}

export async function render(ctx) {
  const { root, args } = ctx;
  const id = args[0] || "";
  const head = h("div", { class: "page-head" });
  const why = h("div", {});
  const top = h("div", { class: "grid two" });
  const placement = h("section", { class: "card", "aria-labelledby": "pl-h" });
  const telemetry = h("section", { class: "card", "aria-labelledby": "tm-h" });
  const logs = h("section", { class: "card", "aria-labelledby": "log-h" });
  root.append(head, why, top, placement, telemetry, logs);

  let stream = "out";
  let tail = 200;
  const logPre = h("pre", { class: "log", tabindex: "0", "aria-label": "Log output" });
  const streamSel = select({ id: "log-stream" }, [["out", "stdout"], ["err", "stderr"]], stream);
  const tailSel = select({ id: "log-tail" }, [["100", "last 100 lines"], ["200", "last 200 lines"], ["1000", "last 1,000 lines"], ["5000", "last 5,000 lines"]], String(tail));
  streamSel.addEventListener("change", () => {
    stream = streamSel.value;
    loadLog();
  });
  tailSel.addEventListener("change", () => {
    tail = Number(tailSel.value);
    loadLog();
  });
  const logNote = h("p", { class: "muted small" });
  replace(
    logs,
    h("div", { class: "card-head" }, h("h2", { id: "log-h" }, "Log tail"), h("div", { class: "actions" }, streamSel, tailSel, h("button", { type: "button", class: "secondary small", onclick: () => loadLog() }, "Refresh"))),
    logNote,
    logPre,
  );

  let detail = null;
  async function loadLog() {
    if (!detail || detail.job.attempt < 1) {
      logNote.textContent = "The job has not started: no output yet.";
      logPre.textContent = "";
      logPre.hidden = true;
      return;
    }
    try {
      const text = await api.text(`/v1/jobs/${encodeURIComponent(id)}/logs`, { stream, tail });
      if (!ctx.alive()) return;
      const atBottom = logPre.scrollTop + logPre.clientHeight >= logPre.scrollHeight - 4;
      logPre.textContent = text || "";
      logPre.hidden = !text;
      logNote.textContent = text ? `Attempt ${detail.job.attempt}, ${stream === "out" ? "stdout" : "stderr"}.` : `Attempt ${detail.job.attempt}: no ${stream === "out" ? "stdout" : "stderr"} output yet.`;
      if (atBottom) logPre.scrollTop = logPre.scrollHeight;
    } catch (e) {
      logNote.textContent = `No log: ${e.message}`;
    }
  }

  function cancelButton() {
    const b = h("button", { type: "button", class: "danger", id: "cancel-job" }, "Cancel job");
    let armed = 0;
    b.addEventListener("click", async () => {
      if (!armed) {
        b.textContent = "Confirm: cancel this job";
        armed = setTimeout(() => {
          armed = 0;
          b.textContent = "Cancel job";
        }, 5000);
        return;
      }
      clearTimeout(armed);
      b.disabled = true;
      try {
        await api.post(`/v1/jobs/${encodeURIComponent(id)}/cancel`);
        toast(`Job ${id} cancelled.`);
      } catch (e) {
        toast(`Could not cancel: ${e instanceof ApiError ? e.explained : e.message}`);
      }
      load();
    });
    return b;
  }

  async function load() {
    let explain = null;
    try {
      detail = await api.get(`/v1/dashboard/jobs/${encodeURIComponent(id)}`);
      if (detail.job.state === "pending") explain = await api.get(`/v1/jobs/${encodeURIComponent(id)}/explain`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        replace(head, h("div", {}, h("h1", {}, `Job ${id}`), h("p", { class: "notice" }, "No such job, or not one you may see.")));
        for (const el of [why, top, placement, telemetry, logs]) el.hidden = true;
        return;
      }
      throw e;
    }
    if (!ctx.alive()) return;
    const j = detail.job;
    const now = Date.now();
    const keepFocus = document.activeElement?.id === "cancel-job";
    replace(
      head,
      h(
        "div",
        {},
        h("h1", {}, `Job ${j.id}`, j.name ? ` · ${j.name}` : ""),
        h("p", { class: "sub" }, h("span", { class: `badge ${j.state}` }, j.state), " ", `${j.project} · submitted by ${j.user} `, f.timeEl(h, j.submit_ms)),
      ),
      h("div", { class: "actions" }, h("a", { href: "#/queue", class: "button secondary" }, "← Queue"), detail.can_cancel ? cancelButton() : null),
    );
    if (keepFocus) document.getElementById("cancel-job")?.focus();

    if (j.state === "pending" && explain) {
      replace(
        why,
        h(
          "div",
          { class: "why", role: "status" },
          h("strong", {}, "Waiting: "),
          f.reasonText(explain.reason),
          explain.detail ? ` (${f.detailText(explain.detail)})` : "",
          ". ",
          explain.estimated_start_ms ? ["Estimated start ", f.timeEl(h, explain.estimated_start_ms), ` (${f.datetime(explain.estimated_start_ms)}).`] : "No start estimate yet.",
          explain.budget ? h("div", { class: "small" }, explain.budget) : null,
        ),
      );
    } else if (["failed", "rejected"].includes(j.state)) {
      replace(why, h("div", { class: "error" }, `${j.state === "failed" ? "Failed" : "Rejected"}: ${j.detail || f.reasonText(j.reason)}${j.exit_code !== null ? ` (exit status ${j.exit_code})` : ""}.`));
    } else {
      replace(why);
    }

    const ran = detail.attempts.reduce((acc, a) => acc + ((a.end_ms ?? now) - a.start_ms), 0);
    replace(
      top,
      h(
        "section",
        { class: "card", "aria-labelledby": "facts-h" },
        h("h2", { id: "facts-h" }, "Request"),
        facts([
          ["Accelerators", `${f.gpus(j.gpus)}${j.model ? ` of ${j.model}` : ""}`],
          ["Models accepted", j.models.length ? j.models.join(", ") : "any"],
          ["Priority class", j.priority_class === j.requested_priority_class ? j.priority_class : `${j.priority_class} (asked for ${j.requested_priority_class}${j.over_budget ? "; over budget" : ""})`],
          ["Walltime", f.duration(j.walltime_s)],
          ["Workload class", j.workload_class],
          ["Command", h("code", {}, j.command.map(shellQuote).join(" "))],
          ["Run time so far", `${f.duration(ran / 1000)} in ${f.plural(j.attempt, "attempt")}, ${f.plural(j.preemptions, "preemption")}`],
          ["GPU-hours", f.gpuHours(detail.attempts.reduce((acc, a) => acc + a.gpu_hours, 0))],
          j.exit_code !== null ? ["Exit status", String(j.exit_code)] : null,
        ]),
      ),
      h(
        "section",
        { class: "card", "aria-labelledby": "tl-h" },
        h("h2", { id: "tl-h" }, "Timeline"),
        timelineSvg(detail, now),
        h(
          "ol",
          { class: "timeline" },
          detail.timeline.map((e) =>
            h(
              "li",
              {},
              f.timeEl(h, e.at_ms, "absolute"),
              h("span", { class: "what" }, e.what, e.attempt ? ` #${e.attempt}` : ""),
              h("span", { class: "muted" }, e.detail || (e.what === "submitted" ? `queued as ${j.requested_priority_class}` : "")),
            ),
          ),
        ),
      ),
    );

    replace(
      placement,
      h("h2", { id: "pl-h" }, "Placement"),
      detail.placement.length
        ? [
            h("p", {}, `${f.gpus(j.gpus)} on ${f.nodes(detail.placement.length)}, within ${detail.span}.`),
            h(
              "div",
              { class: "table-wrap" },
              h(
                "table",
                {},
                h("thead", {}, h("tr", {}, ["Node", "Accelerator ids", "Model", "Site", "Cluster", "Network block", "Rack", "NVLink domain"].map((c) => h("th", { scope: "col" }, c)))),
                h(
                  "tbody",
                  {},
                  detail.placement.map((p) =>
                    h(
                      "tr",
                      {},
                      h("th", { scope: "row", class: "mono" }, p.node),
                      h("td", { class: "mono" }, p.accelerators.join(", ")),
                      h("td", {}, p.model),
                      h("td", {}, p.site),
                      h("td", {}, p.cluster),
                      h("td", {}, p.block),
                      h("td", {}, p.rack, p.nvlink_rack ? " (one NVLink domain)" : ""),
                      h("td", { class: "num" }, `#${p.nvlink_domain}`),
                    ),
                  ),
                ),
              ),
            ),
          ]
        : h("p", { class: "muted" }, j.state === "pending" ? "Not placed yet." : "Not running: no accelerators held."),
    );

    const tm = detail.telemetry;
    if (tm.length) {
      const devices = [...new Set(tm.map((p) => p.device))];
      const series = devices.map((d, i) => ({ name: d, color: COLORS[i % COLORS.length], points: tm.filter((p) => p.device === d).map((p) => [p.at_ms, p.utilization_pct]) }));
      const mem = devices.map((d, i) => ({ name: d, color: COLORS[i % COLORS.length], points: tm.filter((p) => p.device === d).map((p) => [p.at_ms, p.memory_used_mib / 1024]) }));
      replace(
        telemetry,
        h("h2", { id: "tm-h" }, "GPU telemetry"),
        h(
          "div",
          { class: "grid two" },
          h("div", {}, h("h3", {}, "Utilisation"), lineChart({ label: "GPU utilisation per device, percent", series, yFormat: (v) => `${f.int(v)} %`, yMax: 100, yLabel: "%" })),
          h("div", {}, h("h3", {}, "Memory used"), lineChart({ label: "GPU memory used per device, GiB", series: mem, yFormat: (v) => `${f.num2(v)} GiB`, yLabel: "GiB" })),
        ),
        legend(series),
        h("p", { class: "muted small" }, `${f.int(tm.length)} samples from ${f.plural(devices.length, "device")}; the latest: ${tm.slice(-devices.length).map((p) => `${p.device} ${p.utilization_pct} %, ${f.int(p.memory_used_mib)} MiB`).join("; ")}.`),
      );
    } else {
      replace(telemetry, h("h2", { id: "tm-h" }, "GPU telemetry"), h("p", { class: "muted" }, "No GPU telemetry recorded for this job (the executor samples real GPUs through NVML while a job runs; simulated accelerators have none)."));
    }
    await loadLog();
  }

  await load();
  ctx.every(() => {
    if (detail && ["pending", "running"].includes(detail.job.state) && !document.querySelector("#cancel-job")?.textContent.startsWith("Confirm")) load();
  }, 3000);
}
