// Numbers always carry their unit: accelerators (GPUs, counting NPUs too), GPU-hours, ms, %.
const nf0 = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const nf1 = new Intl.NumberFormat("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
const nf2 = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });

export const int = (n) => (n === null || n === undefined ? "—" : nf0.format(n));
export const num1 = (n) => (n === null || n === undefined ? "—" : nf1.format(n));
export const num2 = (n) => (n === null || n === undefined ? "—" : nf2.format(n));

export function plural(n, one, many = one + "s") {
  return `${int(n)} ${Math.round(n) === 1 ? one : many}`;
}
export const gpus = (n) => plural(n, "GPU");
export const jobs = (n) => plural(n, "job");
export const nodes = (n) => plural(n, "node");

/** A fraction as a percentage: 0.753 -> "75.3 %". */
export function pct(frac, digits = 1) {
  if (frac === null || frac === undefined || Number.isNaN(frac)) return "—";
  return `${(frac * 100).toFixed(digits)} %`;
}

export function gpuHours(h) {
  if (h === null || h === undefined) return "—";
  const digits = Math.abs(h) < 10 ? 2 : Math.abs(h) < 1000 ? 1 : 0;
  return `${new Intl.NumberFormat("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits }).format(h)} GPU·h`;
}

export function ms(v) {
  if (v === null || v === undefined) return "—";
  return v < 10 ? `${v.toFixed(2)} ms` : v < 1000 ? `${v.toFixed(1)} ms` : `${(v / 1000).toFixed(2)} s`;
}

/** A duration in seconds, in the two (or ``units``) largest units: "2 h 5 min", "3 d 4 h", "42 s". */
export function duration(seconds, units = 2) {
  if (seconds === null || seconds === undefined) return "—";
  let s = Math.max(0, Math.round(seconds));
  const parts = [];
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["min", 60], ["s", 1]]) {
    if (s >= size || (unit === "s" && parts.length === 0)) {
      parts.push(`${Math.floor(s / size)} ${unit}`);
      s %= size;
    }
    if (parts.length === units) break;
  }
  return parts.join(" ");
}

const pad = (n) => String(n).padStart(2, "0");

/** Local date and time, unambiguous: 2026-11-27 14:05:09. */
export function datetime(msSinceEpoch) {
  if (msSinceEpoch === null || msSinceEpoch === undefined) return "—";
  const d = new Date(msSinceEpoch);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function clock(msSinceEpoch) {
  const d = new Date(msSinceEpoch);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** "in 12 min", "3 h ago", "now". */
export function relative(msSinceEpoch, now = Date.now(), units = 2) {
  if (msSinceEpoch === null || msSinceEpoch === undefined) return "—";
  const d = (msSinceEpoch - now) / 1000;
  if (Math.abs(d) < 5) return "now";
  return d > 0 ? `in ${duration(d, units)}` : `${duration(-d, units)} ago`;
}

/** A <time> element: relative text, exact local time as its title and datetime. */
export function timeEl(h, msSinceEpoch, mode = "relative") {
  if (msSinceEpoch === null || msSinceEpoch === undefined) return "—";
  const text =
    mode === "relative" ? relative(msSinceEpoch) : mode === "short" ? relative(msSinceEpoch, Date.now(), 1) : datetime(msSinceEpoch);
  return h("time", { datetime: new Date(msSinceEpoch).toISOString(), title: datetime(msSinceEpoch) }, text);
}

/** What the reason codes of the core mean, in words. */
export const REASONS = {
  queued: "queued: not yet considered",
  resources: "waiting for free accelerators",
  topology: "waiting for accelerators close enough together",
  "behind-higher-priority": "behind jobs that come first",
  reserved: "has a reservation: starts when it is due",
  "would-delay-reservation": "would delay a reserved job",
  "borrow-limit": "its project is at its borrowing limit",
  "over-budget": "over its GPU-hour budget",
  "backfill-depth": "not reached in this cycle",
  preempted: "preempted, waiting to resume",
  unschedulable: "no accelerators in the fleet can ever run it",
  invalid: "invalid request",
  "unknown-project": "unknown project",
  "node-down": "its node went down: requeued",
  "reclaim-guarantee": "stopped to give back a guarantee",
  priority: "stopped for a higher priority job",
  policy: "stopped by the scheduling policy",
  "round-end": "its round ended",
  running: "running",
  completed: "completed",
  failed: "failed",
  cancelled: "cancelled",
};

/** The core's details name instants in epoch ms: show them as local times. */
export function detailText(text) {
  return String(text || "").replace(/\b(\d{12,14}) ?ms\b/g, (_, v) => datetime(Number(v)));
}

export function reasonText(code) {
  return REASONS[code] || String(code || "").replaceAll("_", " ").replaceAll("-", " ");
}
