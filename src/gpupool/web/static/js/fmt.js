// Numbers always carry their unit: accelerators (GPUs, counting NPUs too), GPU-hours, ms, %.
// Numbers, dates and durations are formatted for the user's language (js/i18n.js).
import { locale, t } from "./i18n.js";

const nf0 = new Intl.NumberFormat(locale, { maximumFractionDigits: 0 });
const nf1 = new Intl.NumberFormat(locale, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
const nf2 = new Intl.NumberFormat(locale, { maximumFractionDigits: 2 });

export const int = (n) => (n === null || n === undefined ? "—" : nf0.format(n));
export const num1 = (n) => (n === null || n === undefined ? "—" : nf1.format(n));
export const num2 = (n) => (n === null || n === undefined ? "—" : nf2.format(n));

/** A count with its unit, in the user's language: ``unit`` is a plural key ("unit.gpu"). */
export function plural(n, unit) {
  return t(unit, { n: Math.round(n), count: int(n) });
}
export const gpus = (n) => plural(n, "unit.gpu");
export const jobs = (n) => plural(n, "unit.job");
export const nodes = (n) => plural(n, "unit.node");

/** A fraction as a percentage: 0.753 -> "75.3 %". */
export function pct(frac, digits = 1) {
  if (frac === null || frac === undefined || Number.isNaN(frac)) return "—";
  return new Intl.NumberFormat(locale, { style: "percent", minimumFractionDigits: digits, maximumFractionDigits: digits }).format(frac);
}

export function gpuHours(h) {
  if (h === null || h === undefined) return "—";
  const digits = Math.abs(h) < 10 ? 2 : Math.abs(h) < 1000 ? 1 : 0;
  return `${new Intl.NumberFormat(locale, { maximumFractionDigits: digits, minimumFractionDigits: digits }).format(h)} GPU·h`;
}

export function ms(v) {
  if (v === null || v === undefined) return "—";
  const n = (x, d) => new Intl.NumberFormat(locale, { minimumFractionDigits: d, maximumFractionDigits: d }).format(x);
  return v < 10 ? `${n(v, 2)} ms` : v < 1000 ? `${n(v, 1)} ms` : `${n(v / 1000, 2)} s`;
}

const durationFormat = "DurationFormat" in Intl ? new Intl.DurationFormat(locale, { style: "narrow" }) : null;

/** A duration in seconds, in the two (or ``units``) largest units: "2h 5m" / "2시간 5분". */
export function duration(seconds, units = 2) {
  if (seconds === null || seconds === undefined) return "—";
  let s = Math.max(0, Math.round(seconds));
  const parts = {};
  let n = 0;
  for (const [unit, size] of [["days", 86400], ["hours", 3600], ["minutes", 60], ["seconds", 1]]) {
    if (s >= size || (unit === "seconds" && n === 0)) {
      parts[unit] = Math.floor(s / size);
      s %= size;
      n += 1;
    }
    if (n === units) break;
  }
  if (durationFormat) return durationFormat.format(parts);
  return Object.entries(parts).map(([u, v]) => `${int(v)} ${u[0]}`).join(" ");
}

const pad = (n) => String(n).padStart(2, "0");

/** Local date and time, unambiguous: 2026-11-27 14:05:09. */
export function datetime(msSinceEpoch) {
  if (msSinceEpoch === null || msSinceEpoch === undefined) return "—";
  const d = new Date(msSinceEpoch);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

const dateFmt = new Intl.DateTimeFormat(locale, { dateStyle: "medium" });
const dateTimeFmt = new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "medium" });

/** A date in the user's language: "Nov 27, 2026" / "2026. 11. 27.". */
export function date(msSinceEpoch) {
  return msSinceEpoch === null || msSinceEpoch === undefined ? "—" : dateFmt.format(new Date(msSinceEpoch));
}

/** A date and time in the user's language: "Nov 27, 2026, 2:05:09 PM" / "2026. 11. 27. 오후 2:05:09". */
export function dateTime(msSinceEpoch) {
  return msSinceEpoch === null || msSinceEpoch === undefined ? "—" : dateTimeFmt.format(new Date(msSinceEpoch));
}

export function clock(msSinceEpoch) {
  const d = new Date(msSinceEpoch);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** "in 12m", "3h ago", "now" (in the user's language). */
export function relative(msSinceEpoch, now = Date.now(), units = 2) {
  if (msSinceEpoch === null || msSinceEpoch === undefined) return "—";
  const d = (msSinceEpoch - now) / 1000;
  if (Math.abs(d) < 5) return t("time.now");
  return d > 0 ? t("time.in", { d: duration(d, units) }) : t("time.ago", { d: duration(-d, units) });
}

/** A <time> element: relative text, exact local time as its title and datetime. */
export function timeEl(h, msSinceEpoch, mode = "relative") {
  if (msSinceEpoch === null || msSinceEpoch === undefined) return "—";
  const text =
    mode === "relative" ? relative(msSinceEpoch) : mode === "short" ? relative(msSinceEpoch, Date.now(), 1) : dateTime(msSinceEpoch);
  return h("time", { datetime: new Date(msSinceEpoch).toISOString(), title: dateTime(msSinceEpoch) }, text);
}

/** What the reason codes of the core mean, in words (keys "reason.<code>" of the catalogue). */
export const REASONS = [
  "queued", "resources", "topology", "behind-higher-priority", "reserved", "would-delay-reservation",
  "borrow-limit", "over-limit", "over-budget", "backfill-depth", "preempted", "unschedulable", "invalid",
  "unknown-project", "node-down", "reclaim-guarantee", "priority", "policy", "round-end", "running",
  "completed", "failed", "cancelled",
];

/** A job or node state in words (keys "state.<state>"); unknown states as they are. */
export const STATES = [
  "pending", "running", "completed", "failed", "cancelled", "rejected", "up", "down", "drained",
  "done", "active", "exhausted", "expired", "requested", "approved",
];
export function stateText(state) {
  return STATES.includes(state) ? t(`state.${state}`) : String(state ?? "");
}

/** The core's details name instants in epoch ms: show them as local times. */
export function detailText(text) {
  return String(text || "").replace(/\b(\d{12,14}) ?ms\b/g, (_, v) => datetime(Number(v)));
}

export function reasonText(code) {
  return REASONS.includes(code) ? t(`reason.${code}`) : String(code || "").replaceAll("_", " ").replaceAll("-", " ");
}
