// One job: why it waits (or how it ended), its timeline of attempts (submitted, started,
// preempted, resumed, finished), where it runs in the topology, its log tail, and GPU
// telemetry where the executor records some. The cancel button shows only if the API would
// accept the cancellation (the caller is in the job's project, or a pool admin).
import { api, ApiError } from "../api.js";
import { COLORS, legend, lineChart } from "../charts.js";
import { h, replace, s, select, toast } from "../dom.js";
import * as f from "../fmt.js";
import { t } from "../i18n.js";

export const title = () => t("job.title");

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
    "aria-label": t("job.tl_label", { from: f.dateTime(t0), to: f.dateTime(t1), attempts: f.plural(d.attempts.length, "unit.attempt") }),
  });
  svg.append(s("line", { x1: m.l, x2: W - m.r, y1: 30, y2: 30, stroke: "#c4cad4", "stroke-width": 2 }));
  for (const a of d.attempts) {
    const x0 = X(a.start_ms);
    const x1 = X(a.end_ms ?? Math.min(now, t1));
    svg.append(s("rect", { x: x0, y: 22, width: Math.max(2, x1 - x0), height: 16, rx: 3, fill: "#93b4f5" }, s("title", {}, t("job.attempt_title", { n: a.attempt, d: f.duration(((a.end_ms ?? now) - a.start_ms) / 1000), model: a.model }))));
  }
  for (const e of d.timeline) {
    svg.append(s("circle", { cx: X(e.at_ms), cy: 30, r: 5, fill: EVENT_COLORS[e.what] || "#334155" }, s("title", {}, `${t(`event.${e.what}`)} · ${f.dateTime(e.at_ms)}`)));
  }
  svg.append(
    s("text", { x: m.l, y: 62 }, f.dateTime(t0)),
    s("text", { x: W - m.r, y: 62, "text-anchor": "end" }, d.job.end_ms ? f.dateTime(t1) : `${t("time.now")} (${f.dateTime(t1)})`),
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
  const logPre = h("pre", { class: "log", tabindex: "0", "aria-label": t("job.log_output") });
  const streamSel = select({ id: "log-stream", "aria-label": t("job.stream") }, [["out", "stdout"], ["err", "stderr"]], stream);
  const tailSel = select({ id: "log-tail", "aria-label": t("job.lines") }, [100, 200, 1000, 5000].map((n) => [String(n), t("job.last_lines", { n: f.int(n) })]), String(tail));
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
    h("div", { class: "card-head" }, h("h2", { id: "log-h" }, t("job.log_tail")), h("div", { class: "actions" }, streamSel, tailSel, h("button", { type: "button", class: "secondary small", onclick: () => loadLog() }, t("job.refresh")))),
    logNote,
    logPre,
  );

  let detail = null;
  async function loadLog() {
    if (!detail || detail.job.attempt < 1) {
      logNote.textContent = t("job.not_started");
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
      const sname = stream === "out" ? "stdout" : "stderr";
      logNote.textContent = text ? t("job.log_of", { n: detail.job.attempt, stream: sname }) : t("job.log_none", { n: detail.job.attempt, stream: sname });
      if (atBottom) logPre.scrollTop = logPre.scrollHeight;
    } catch (e) {
      logNote.textContent = t("job.no_log", { error: e.message });
    }
  }

  function cancelButton() {
    const b = h("button", { type: "button", class: "danger", id: "cancel-job" }, t("job.cancel"));
    let armed = 0;
    b.addEventListener("click", async () => {
      if (!armed) {
        b.textContent = t("job.confirm");
        b.dataset.armed = "1";
        armed = setTimeout(() => {
          armed = 0;
          delete b.dataset.armed;
          b.textContent = t("job.cancel");
        }, 5000);
        return;
      }
      clearTimeout(armed);
      b.disabled = true;
      try {
        await api.post(`/v1/jobs/${encodeURIComponent(id)}/cancel`);
        toast(t("q.job_cancelled", { id }));
      } catch (e) {
        toast(t("job.cancel_failed", { error: e instanceof ApiError ? e.explained : e.message }));
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
        replace(head, h("div", {}, h("h1", {}, t("job.heading", { id })), h("p", { class: "notice" }, t("job.no_such"))));
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
        h("h1", {}, t("job.heading", { id: j.id }), j.name ? ` · ${j.name}` : ""),
        h("p", { class: "sub" }, h("span", { class: `badge ${j.state}` }, f.stateText(j.state)), " ", `${j.project} · ${t("job.submitted_by", { user: j.user })} `, f.timeEl(h, j.submit_ms)),
      ),
      h("div", { class: "actions" }, h("a", { href: "#/queue", class: "button secondary" }, t("job.back")), detail.can_cancel ? cancelButton() : null),
    );
    if (keepFocus) document.getElementById("cancel-job")?.focus();

    if (j.state === "pending" && explain) {
      replace(
        why,
        h(
          "div",
          { class: "why", role: "status" },
          h("strong", {}, t("job.waiting"), " "),
          f.reasonText(explain.reason),
          explain.detail ? ` (${f.detailText(explain.detail)})` : "",
          ". ",
          explain.estimated_start_ms ? [t("job.est_start"), " ", f.timeEl(h, explain.estimated_start_ms), ` (${f.dateTime(explain.estimated_start_ms)}).`] : t("job.no_estimate"),
          explain.budget ? h("div", { class: "small" }, explain.budget) : null,
        ),
      );
    } else if (["failed", "rejected"].includes(j.state)) {
      replace(why, h("div", { class: "error" }, `${t(j.state === "failed" ? "q.filter.failed" : "q.filter.rejected")}: ${j.detail || f.reasonText(j.reason)}${j.exit_code !== null ? ` (${t("job.exit_status", { code: j.exit_code })})` : ""}.`));
    } else {
      replace(why);
    }

    const ran = detail.attempts.reduce((acc, a) => acc + ((a.end_ms ?? now) - a.start_ms), 0);
    replace(
      top,
      h(
        "section",
        { class: "card", "aria-labelledby": "facts-h" },
        h("h2", { id: "facts-h" }, t("job.request")),
        facts([
          [t("col.accelerators"), j.model ? t("job.gpus_of", { gpus: f.gpus(j.gpus), model: j.model }) : f.gpus(j.gpus)],
          [t("job.models_accepted"), j.models.length ? j.models.join(", ") : t("ten.any")],
          [t("q.prio_class"), j.priority_class === j.requested_priority_class ? t(`prio.${j.priority_class}`) : `${t(`prio.${j.priority_class}`)} (${t("q.asked", { prio: t(`prio.${j.requested_priority_class}`) })}${j.over_budget ? `; ${t("q.over_budget")}` : ""})`],
          [t("q.walltime"), f.duration(j.walltime_s)],
          [t("job.workload"), j.workload_class],
          [t("job.command"), h("code", {}, j.command.map(shellQuote).join(" "))],
          [t("job.run_time"), t("job.run_time_v", { d: f.duration(ran / 1000), attempts: f.plural(j.attempt, "unit.attempt"), preemptions: f.plural(j.preemptions, "unit.preemption") })],
          [t("ten.col_hours"), f.gpuHours(detail.attempts.reduce((acc, a) => acc + a.gpu_hours, 0))],
          j.exit_code !== null ? [t("job.exit"), String(j.exit_code)] : null,
        ]),
      ),
      h(
        "section",
        { class: "card", "aria-labelledby": "tl-h" },
        h("h2", { id: "tl-h" }, t("job.timeline")),
        timelineSvg(detail, now),
        h(
          "ol",
          { class: "timeline" },
          detail.timeline.map((e) =>
            h(
              "li",
              {},
              f.timeEl(h, e.at_ms, "absolute"),
              h("span", { class: "what" }, t(`event.${e.what}`), e.attempt ? ` #${e.attempt}` : ""),
              h("span", { class: "muted" }, e.detail || (e.what === "submitted" ? t("job.queued_as", { prio: t(`prio.${j.requested_priority_class}`) }) : "")),
            ),
          ),
        ),
      ),
    );

    replace(
      placement,
      h("h2", { id: "pl-h" }, t("job.placement")),
      detail.placement.length
        ? [
            h("p", {}, t("job.placed", { gpus: f.gpus(j.gpus), nodes: f.nodes(detail.placement.length), span: detail.span })),
            h(
              "div",
              { class: "table-wrap" },
              h(
                "table",
                {},
                h("thead", {}, h("tr", {}, ["col.node", "job.acc_ids", "col.model", "job.site", "col.cluster", "job.block", "job.rack", "job.nvlink"].map((c) => h("th", { scope: "col" }, t(c))))),
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
                      h("td", {}, p.rack, p.nvlink_rack ? ` (${t("job.one_nvlink")})` : ""),
                      h("td", { class: "num" }, `#${p.nvlink_domain}`),
                    ),
                  ),
                ),
              ),
            ),
          ]
        : h("p", { class: "muted" }, j.state === "pending" ? t("job.not_placed") : t("job.not_running")),
    );

    const tm = detail.telemetry;
    if (tm.length) {
      const devices = [...new Set(tm.map((p) => p.device))];
      const series = devices.map((d, i) => ({ name: d, color: COLORS[i % COLORS.length], points: tm.filter((p) => p.device === d).map((p) => [p.at_ms, p.utilization_pct]) }));
      const mem = devices.map((d, i) => ({ name: d, color: COLORS[i % COLORS.length], points: tm.filter((p) => p.device === d).map((p) => [p.at_ms, p.memory_used_mib / 1024]) }));
      replace(
        telemetry,
        h("h2", { id: "tm-h" }, t("job.telemetry")),
        h(
          "div",
          { class: "grid two" },
          h("div", {}, h("h3", {}, t("job.util")), lineChart({ label: t("job.util_label"), series, yFormat: (v) => `${f.int(v)} %`, yMax: 100, yLabel: "%" })),
          h("div", {}, h("h3", {}, t("job.mem")), lineChart({ label: t("job.mem_label"), series: mem, yFormat: (v) => `${f.num2(v)} GiB`, yLabel: "GiB" })),
        ),
        legend(series),
        h("p", { class: "muted small" }, t("job.samples", { n: f.int(tm.length), devices: f.plural(devices.length, "unit.device"), latest: tm.slice(-devices.length).map((p) => `${p.device} ${p.utilization_pct} %, ${f.int(p.memory_used_mib)} MiB`).join("; ") })),
      );
    } else {
      replace(telemetry, h("h2", { id: "tm-h" }, t("job.telemetry")), h("p", { class: "muted" }, t("job.no_telemetry")));
    }
    await loadLog();
  }

  await load();
  ctx.every(() => {
    if (detail && ["pending", "running"].includes(detail.job.state) && !document.querySelector("#cancel-job")?.dataset.armed) load();
  }, 3000);
}
