// Queue: pending and running jobs (or any state), filtered, sorted and paginated on the
// server (cursor pagination: page 2,000 of 100,000 jobs costs what page 1 does). Each pending
// job says why it waits and when it will probably start. Members may submit and cancel jobs
// of their projects; the buttons appear only where the API would accept them.
import { api, ApiError } from "../api.js";
import { field, h, replace, select, toast } from "../dom.js";
import * as f from "../fmt.js";
import { t } from "../i18n.js";

export const title = () => t("nav.queue");

/** The state filter's choices (labels: "q.filter.<value>"). */
const STATES = ["active", "pending", "running", "finished", "completed", "failed", "cancelled", "rejected", "all"];
const PRIORITIES = ["normal", "high", "low", "preemptible", "reserved"];

/** Split a command line into argv like a POSIX shell would for plain words and quotes. */
export function splitCommand(text) {
  const out = [];
  let cur = "";
  let any = false;
  let quote = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote === "'") {
      if (c === "'") quote = "";
      else cur += c;
    } else if (quote === '"') {
      if (c === '"') quote = "";
      else if (c === "\\" && i + 1 < text.length && '"\\$`'.includes(text[i + 1])) cur += text[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      any = true;
    } else if (c === "\\" && i + 1 < text.length) {
      cur += text[++i];
      any = true;
    } else if (/\s/.test(c)) {
      if (cur || any) out.push(cur);
      cur = "";
      any = false;
    } else {
      cur += c;
    }
  }
  if (quote) throw new Error(t("q.unclosed_quote"));
  if (cur || any) out.push(cur);
  return out;
}

function submitForm(ctx, onDone) {
  const { session } = ctx;
  let key = crypto.randomUUID();
  const project = select({ id: "sub-project", required: true }, session.submit_projects, session.submit_projects[0]);
  const name = h("input", { id: "sub-name", maxlength: 255, autocomplete: "off", placeholder: t("q.name_example") });
  const gpus = h("input", { id: "sub-gpus", type: "number", min: 1, max: 100000, value: 1, required: true, inputmode: "numeric" });
  const wall = h("input", { id: "sub-wall", type: "number", min: 1, value: 60, required: true, inputmode: "numeric" });
  const wallUnit = select({ id: "sub-wall-unit", "aria-label": t("q.wall_unit") }, [["60", t("q.minutes")], ["3600", t("q.hours")]], "60");
  const prio = select({ id: "sub-prio" }, PRIORITIES.map((p) => [p, t(`prio.${p}`)]), "normal");
  const command = h("input", { id: "sub-cmd", required: true, autocomplete: "off", spellcheck: "false", class: "mono", placeholder: "python train.py --epochs 3", size: 50 });
  // Only the models the chosen project may run on (its clusters): a job asking for another
  // would be accepted and then never start.
  const models = h("fieldset", { class: "checks", id: "sub-models" });
  const drawModels = () => {
    const allowed = (session.project_models || {})[project.value] || session.models;
    replace(
      models,
      h("legend", {}, t("q.models_legend")),
      allowed.map((m) => h("label", {}, h("input", { type: "checkbox", name: "model", value: m }), m)),
    );
  };
  drawModels();
  project.addEventListener("change", drawModels);
  const msg = h("div", { role: "status", "aria-live": "polite" });
  const button = h("button", { type: "submit" }, t("q.submit_job"));
  const form = h(
    "form",
    { class: "card", id: "submit-form", "aria-labelledby": "submit-h" },
    h("h2", { id: "submit-h" }, t("q.submit_a_job")),
    h(
      "div",
      { class: "fields" },
      field(t("col.project"), project),
      field(t("q.name"), name),
      field(t("q.gpus"), gpus),
      h("div", { class: "field" }, h("label", { for: "sub-wall" }, t("q.walltime")), h("div", { class: "actions" }, wall, wallUnit)),
      field(t("q.prio_class"), prio),
    ),
    h("div", { class: "fields" }, models),
    h("div", { class: "fields" }, h("div", { class: "field" }, h("label", { for: "sub-cmd" }, t("q.command")), command)),
    h("div", { class: "actions" }, button, h("span", { class: "muted small" }, t("q.wall_max", { d: f.duration(session.max_walltime_s) }))),
    msg,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    let argv;
    try {
      argv = splitCommand(command.value);
    } catch (e) {
      replace(msg, h("p", { class: "error" }, e.message));
      return command.focus();
    }
    if (!argv.length) {
      replace(msg, h("p", { class: "error" }, t("q.give_command")));
      return command.focus();
    }
    const body = {
      project: project.value,
      name: name.value,
      gpus: Number(gpus.value),
      walltime_s: Math.round(Number(wall.value) * Number(wallUnit.value)),
      priority_class: prio.value,
      models: [...models.querySelectorAll("input:checked")].map((i) => i.value),
      command: argv,
    };
    button.disabled = true;
    try {
      // The same key until a submission succeeds: a double click or a retry never makes two jobs.
      const job = await api.post("/v1/jobs", body, { headers: { "Idempotency-Key": key } });
      key = crypto.randomUUID();
      replace(msg, h("p", { class: "okbox" }, t("q.submitted"), " ", h("a", { href: `#/job/${job.id}` }, `${job.id}${job.name ? ` (${job.name})` : ""}`), `: ${f.reasonText(job.reason)}.`));
      toast(t("q.job_submitted", { id: job.id }));
      onDone();
    } catch (e) {
      replace(msg, h("p", { class: "error", role: "alert" }, t("q.not_submitted", { error: e instanceof ApiError ? e.explained : e.message })));
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

export async function render(ctx) {
  const { root, session, query } = ctx;
  const q = {
    state: query.get("state") || "active",
    tenant: query.get("tenant") || "",
    project: query.get("project") || "",
    user: query.get("user") || "",
    model: query.get("model") || "",
    sort: query.get("sort") || "submitted",
    order: query.get("order") || "desc",
    limit: Number(query.get("limit")) || 50,
  };
  let cursors = [null]; // the cursor of each page seen so far: "previous" goes back one
  let page = 0;

  const tenants = await api.get("/v1/tenants");
  const groups = tenants.filter((t) => t.kind !== "project");
  const projects = tenants.filter((t) => t.kind === "project");
  const label = (t) => `${t.name} (${t.path})`;
  const names = new Map(tenants.map((t) => [t.path, t.name]));

  const heading = h("h1", {}, t("nav.queue"));
  const sub = h("p", { class: "sub" });
  const toggle = session.submit_projects.length
    ? h("button", { type: "button", "aria-expanded": "false", "aria-controls": "submit-form" }, t("q.submit_a_job"))
    : null;
  const formSlot = h("div", {});
  root.append(h("div", { class: "page-head" }, h("div", {}, heading, sub), toggle), formSlot);
  if (toggle) {
    const form = submitForm(ctx, () => load());
    form.hidden = true;
    formSlot.append(form);
    toggle.addEventListener("click", () => {
      form.hidden = !form.hidden;
      toggle.setAttribute("aria-expanded", String(!form.hidden));
      toggle.textContent = form.hidden ? t("q.submit_a_job") : t("q.hide_form");
      if (!form.hidden) form.querySelector("select, input")?.focus();
    });
  }

  const controls = {
    state: select({ id: "f-state" }, STATES.map((v) => [v, t(`q.filter.${v}`)]), q.state),
    tenant: select({ id: "f-tenant" }, [["", t("q.any_group")], ...groups.map((x) => [x.path, label(x)])], q.tenant),
    project: select({ id: "f-project" }, [["", t("q.any_project")], ...projects.map((x) => [x.path, label(x)])], q.project),
    user: h("input", { id: "f-user", value: q.user, placeholder: t("q.user_name"), autocomplete: "off", size: 14 }),
    model: select({ id: "f-model" }, [["", t("q.any_model")], ...session.models], q.model),
    limit: select({ id: "f-limit" }, ["25", "50", "100", "200"].map((n) => [n, t("q.per_page", { n: f.int(Number(n)) })]), String(q.limit)),
  };
  const filters = h(
    "form",
    { class: "card fields", role: "search", "aria-label": t("q.filter_jobs") },
    field(t("col.state"), controls.state),
    field(t("q.group"), controls.tenant),
    field(t("col.project"), controls.project),
    field(t("col.user"), controls.user),
    field(t("q.model"), controls.model),
    field(t("q.page_size"), controls.limit),
    h("button", { type: "submit", class: "secondary" }, t("q.apply")),
    h("button", { type: "reset", class: "link" }, t("q.clear")),
  );
  const onChange = () => {
    for (const k of ["state", "tenant", "project", "user", "model"]) q[k] = controls[k].value.trim();
    q.limit = Number(controls.limit.value);
    cursors = [null];
    page = 0;
    sync();
    load();
  };
  for (const k of ["state", "tenant", "project", "model", "limit"]) controls[k].addEventListener("change", onChange);
  filters.addEventListener("submit", (ev) => {
    ev.preventDefault();
    onChange();
  });
  filters.addEventListener("reset", (ev) => {
    ev.preventDefault();
    controls.state.value = "active";
    for (const k of ["tenant", "project", "user", "model"]) controls[k].value = "";
    onChange();
  });
  const results = h("section", { class: "card", "aria-labelledby": "results-h" });
  root.append(filters, results);

  function sync() {
    ctx.setQuery({
      state: q.state === "active" ? "" : q.state,
      tenant: q.tenant,
      project: q.project,
      user: q.user,
      model: q.model,
      sort: q.sort === "submitted" ? "" : q.sort,
      order: q.order === "desc" ? "" : q.order,
      limit: q.limit === 50 ? "" : q.limit,
    });
  }

  function sortHeader(labelText, key, cls) {
    const active = q.sort === key;
    return h(
      "th",
      { scope: "col", class: cls, "aria-sort": active ? (q.order === "asc" ? "ascending" : "descending") : "none" },
      h(
        "button",
        {
          type: "button",
          class: "sort",
          title: t("q.sort_by", { column: labelText }),
          onclick: () => {
            if (q.sort === key) q.order = q.order === "asc" ? "desc" : "asc";
            else {
              q.sort = key;
              // Sensible first direction: soonest estimated start and highest priority first.
              q.order = key === "estimated_start" || key === "priority" ? "asc" : "desc";
            }
            cursors = [null];
            page = 0;
            sync();
            load(`sort-${key}`);
          },
          "data-key": `sort-${key}`,
        },
        labelText,
      ),
    );
  }

  function cancelButton(job) {
    const b = h("button", { type: "button", class: "secondary small", "data-key": `cancel-${job.id}` }, t("q.cancel"));
    let armed = 0;
    b.addEventListener("click", async () => {
      if (!armed) {
        // Two steps, no modal dialog: the first click asks, the second (within 5 s) cancels.
        b.textContent = t("q.confirm_cancel");
        b.className = "danger small";
        armed = setTimeout(() => {
          armed = 0;
          b.textContent = t("q.cancel");
          b.className = "secondary small";
        }, 5000);
        return;
      }
      clearTimeout(armed);
      b.disabled = true;
      try {
        await api.post(`/v1/jobs/${job.id}/cancel`);
        toast(t("q.job_cancelled", { id: job.id }));
      } catch (e) {
        toast(t("q.cancel_failed", { id: job.id, error: e.explained || e.message }));
      }
      load();
    });
    return b;
  }

  function row(j) {
    const pending = j.state === "pending";
    return h(
      "tr",
      { "data-job": j.id },
      h("th", { scope: "row", class: "job" }, h("a", { href: `#/job/${j.id}` }, j.id), j.name ? h("span", { class: "path" }, j.name) : null),
      h("td", { "data-label": t("col.project") }, h("span", {}, names.get(j.project) || j.project.split("/").pop()), h("span", { class: "path" }, j.project)),
      h("td", { "data-label": t("col.user") }, j.user),
      h("td", { class: "c-state", "data-label": t("col.state") }, h("span", { class: `badge ${j.state}` }, f.stateText(j.state)), j.over_budget ? h("span", { class: "path" }, t("q.over_budget")) : null),
      h("td", { class: "num", "data-label": t("col.accelerators") }, f.gpus(j.gpus), h("span", { class: "path" }, j.model || (j.models.length ? j.models.join(" | ") : t("q.any_model_lc")))),
      h("td", { "data-label": t("col.priority") }, t(`prio.${j.priority_class}`), j.priority_class !== j.requested_priority_class ? h("span", { class: "path" }, t("q.asked", { prio: t(`prio.${j.requested_priority_class}`) })) : null),
      h("td", { class: "num", "data-label": t("col.submitted") }, f.timeEl(h, j.submit_ms, "short")),
      h("td", { class: "num", "data-label": t("col.started") }, j.start_ms ? f.timeEl(h, j.start_ms, "short") : "—"),
      h("td", { class: "num c-est", "data-label": t("col.est_start") }, pending ? (j.estimated_start_ms ? f.timeEl(h, j.estimated_start_ms) : h("span", { class: "muted" }, t("q.unknown"))) : "—"),
      h("td", { class: "reason c-reason", "data-label": t("col.reason") }, pending || j.state === "running" ? f.reasonText(j.reason) : f.detailText(j.detail) || f.reasonText(j.reason), pending && j.detail ? h("span", { class: "path" }, f.detailText(j.detail)) : null),
      h("td", {}, j.can_cancel ? cancelButton(j) : ""),
    );
  }

  async function load(focusKey) {
    const focused = focusKey || document.activeElement?.dataset?.key;
    let data;
    try {
      data = await api.get("/v1/dashboard/jobs", { ...q, cursor: cursors[page] });
    } catch (e) {
      replace(results, h("p", { class: "error", role: "alert" }, e instanceof ApiError ? e.explained : e.message));
      return;
    }
    if (!ctx.alive()) return;
    const stateLabel = STATES.includes(q.state) ? t(`q.filter.${q.state}`) : q.state;
    sub.textContent = `${stateLabel}: ${f.jobs(data.total)}${session.sees_all ? "" : ` ${t("q.in_your_projects")}`}`;
    const first = page * q.limit + 1;
    const last = page * q.limit + data.items.length;
    const table = h(
      "table",
      { class: "jobs" },
      h("caption", {}, data.items.length ? t("q.caption", { first: f.int(first), last: f.int(last), total: f.int(data.total) }) : t("q.none")),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col" }, t("col.job")),
          h("th", { scope: "col" }, t("col.project")),
          h("th", { scope: "col" }, t("col.user")),
          h("th", { scope: "col" }, t("col.state")),
          sortHeader(t("col.accelerators"), "gpus", "num"),
          sortHeader(t("col.priority"), "priority"),
          sortHeader(t("col.submitted"), "submitted", "num"),
          sortHeader(t("col.started"), "started", "num"),
          sortHeader(t("col.est_start"), "estimated_start", "num"),
          h("th", { scope: "col" }, t("col.reason")),
          h("th", { scope: "col" }, h("span", { class: "muted" }, t("col.action"))),
        ),
      ),
      h("tbody", {}, data.items.map(row)),
    );
    const prev = h("button", { type: "button", class: "secondary", disabled: page === 0, "data-key": "prev" }, t("q.prev"));
    const next = h("button", { type: "button", class: "secondary", disabled: !data.next_cursor, "data-key": "next" }, t("q.next"));
    prev.addEventListener("click", () => {
      page = Math.max(0, page - 1);
      load("prev");
    });
    next.addEventListener("click", () => {
      cursors[page + 1] = data.next_cursor;
      cursors = cursors.slice(0, page + 2);
      page += 1;
      load("next");
    });
    replace(
      results,
      h("h2", { id: "results-h", class: "sr-only" }, t("q.jobs")),
      h("div", { class: "table-wrap" }, table),
      h(
        "div",
        { class: "pager" },
        h("span", { class: "muted small" }, t("q.page_of", { page: f.int(page + 1), pages: f.int(Math.max(1, Math.ceil(data.total / q.limit))) }), " · ", t("ov.refresh5")),
        h("div", { class: "actions" }, prev, next),
      ),
    );
    if (focused) results.querySelector(`[data-key="${CSS.escape(focused)}"]`)?.focus();
  }

  await load();
  ctx.every(() => {
    // Do not redraw under a half-done two-step cancel.
    if (!results.querySelector("button.danger")) load();
  }, 5000);
}
