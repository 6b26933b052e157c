// Small SVG charts drawn by hand (no chart library): a line chart with a time axis, and a
// stacked utilisation bar. Each chart is an <svg role="img"> with a text summary as its label,
// and the pages show the numbers next to it, so nothing is only in the picture.
import { h, s } from "./dom.js";
import { clock, datetime } from "./fmt.js";
import { t } from "./i18n.js";

export const COLORS = ["#1d4ed8", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#be185d", "#4d7c0f"];

/** Round ``max`` up to a "nice" axis end and pick its tick step (1, 2 or 5 times a power of ten). */
export function niceScale(max, ticks = 4, integer = false) {
  if (!(max > 0)) return integer ? { end: 1, step: 1 } : { end: 1, step: 0.25 };
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  let step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((v) => v >= raw);
  if (integer) step = Math.max(1, Math.round(step)); // counts of jobs have no fractions
  return { end: Math.ceil(max / step - 1e-9) * step, step };
}

const TIME_STEPS = [
  1e3, 5e3, 15e3, 30e3, 60e3, 120e3, 300e3, 600e3, 900e3, 1800e3, 3600e3, 7200e3, 10800e3, 21600e3,
  43200e3, 86400e3, 2 * 86400e3, 7 * 86400e3, 14 * 86400e3, 30 * 86400e3, 91 * 86400e3,
];

function timeTicks(x0, x1, max = 6) {
  const step = TIME_STEPS.find((st) => (x1 - x0) / st <= max) || (x1 - x0) / max;
  // Align to the step in local time (ticks on the hour, on the minute...).
  const offset = new Date(x0).getTimezoneOffset() * 60e3;
  const first = Math.ceil((x0 - offset) / step) * step + offset;
  const out = [];
  for (let t = first; t <= x1; t += step) out.push(t);
  return { ticks: out, step };
}

function timeLabel(t, step, span) {
  if (step >= 86400e3 || span > 3 * 86400e3) return datetime(t).slice(5, 10);
  if (span > 86400e3) return `${datetime(t).slice(5, 10)} ${clock(t)}`;
  if (step < 60e3) return datetime(t).slice(11); // seconds matter on a short axis
  return clock(t);
}

/**
 * A line chart over time.
 * opts: {series: [{name, color, points: [[t_ms, y]], dash}], yFormat, yLabel, label,
 *        x0, x1 (optional fixed range), yMax (optional), width, height, hlines: [{y, name, dash}]}
 */
export function lineChart(opts) {
  const W = opts.width || 640;
  const H = opts.height || 220;
  const m = { l: 60, r: 14, t: 12, b: 26 };
  const iw = W - m.l - m.r;
  const ih = H - m.t - m.b;
  const fmtY = opts.yFormat || ((v) => String(v));
  const all = opts.series.flatMap((se) => se.points.filter((p) => p[1] !== null && p[1] !== undefined));
  const svg = s("svg", {
    class: "chart",
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-label": opts.label || t("chart.chart"),
  });
  if (!all.length && !(opts.x0 && opts.x1)) {
    svg.append(s("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty-text" }, opts.empty || t("chart.no_data")));
    return svg;
  }
  const x0 = opts.x0 ?? Math.min(...all.map((p) => p[0]));
  let x1 = opts.x1 ?? Math.max(...all.map((p) => p[0]));
  if (x1 <= x0) x1 = x0 + 60e3;
  const hl = (opts.hlines || []).map((l) => l.y);
  const maxY = Math.max(opts.yMax ?? 0, ...all.map((p) => p[1]), ...hl, 0);
  const { end: yEnd, step: yStep } = niceScale(maxY || 1, 4, Boolean(opts.yInteger));
  const X = (t) => m.l + ((t - x0) / (x1 - x0)) * iw;
  const Y = (v) => m.t + ih - (v / yEnd) * ih;

  const grid = s("g", { class: "grid" });
  const axis = s("g", { class: "axis" });
  for (let v = 0; v <= yEnd + 1e-9; v += yStep) {
    grid.append(s("line", { x1: m.l, x2: m.l + iw, y1: Y(v), y2: Y(v) }));
    axis.append(s("text", { x: m.l - 6, y: Y(v) + 4, "text-anchor": "end" }, fmtY(v)));
  }
  const { ticks, step } = timeTicks(x0, x1);
  for (const t of ticks) {
    axis.append(s("line", { x1: X(t), x2: X(t), y1: m.t + ih, y2: m.t + ih + 4 }));
    axis.append(s("text", { x: X(t), y: H - 6, "text-anchor": "middle" }, timeLabel(t, step, x1 - x0)));
  }
  axis.append(s("line", { x1: m.l, x2: m.l + iw, y1: m.t + ih, y2: m.t + ih }));
  svg.append(grid, axis);
  if (opts.now && opts.now > x0 && opts.now < x1) {
    svg.append(
      s("line", { x1: X(opts.now), x2: X(opts.now), y1: m.t, y2: m.t + ih, stroke: "#d97706", "stroke-width": 1, "stroke-dasharray": "3 3" }),
      s("text", { x: X(opts.now) + 4, y: m.t + 10 }, t("time.now")),
    );
  }
  for (const l of opts.hlines || []) {
    svg.append(
      s("line", { x1: m.l, x2: m.l + iw, y1: Y(l.y), y2: Y(l.y), stroke: l.color || "#7c8594", "stroke-width": 1.5, "stroke-dasharray": "6 4" }),
    );
  }
  opts.series.forEach((se, i) => {
    const color = se.color || COLORS[i % COLORS.length];
    // Break the line where a value is missing (null) instead of drawing across the gap.
    let d = "";
    let pen = false;
    for (const [t, v] of se.points) {
      if (v === null || v === undefined) {
        pen = false;
        continue;
      }
      d += `${pen ? "L" : "M"}${X(t).toFixed(1)},${Y(v).toFixed(1)}`;
      pen = true;
    }
    const path = s("path", { d, class: "line", stroke: color });
    if (se.dash) path.setAttribute("stroke-dasharray", se.dash);
    svg.append(path);
    const pts = se.points.filter((p) => p[1] !== null && p[1] !== undefined);
    // Mark the latest value: a short series (or one still young on a long axis) stays visible.
    if (pts.length === 1 || (opts.markLast && pts.length)) {
      const [t, v] = pts[pts.length - 1];
      svg.append(s("circle", { cx: X(t), cy: Y(v), r: 3.5, fill: color }, s("title", {}, `${se.name}: ${fmtY(v)}`)));
    }
  });
  if (opts.yLabel) {
    svg.append(s("text", { x: 12, y: m.t + ih / 2, transform: `rotate(-90 12 ${m.t + ih / 2})`, "text-anchor": "middle" }, opts.yLabel));
  }
  return svg;
}

/** The legend of a line chart: coloured keys with names (and dashed keys for reference lines). */
export function legend(series, hlines = []) {
  return h(
    "div",
    { class: "chart-legend" },
    series.map((se, i) =>
      h("span", {}, h("span", { class: "key", style: { background: se.color || COLORS[i % COLORS.length] } }), se.name),
    ),
    hlines.map((l) => h("span", {}, h("span", { class: "key dash" }), l.name)),
  );
}

/** A stacked bar: busy (solid), unavailable (hatched: #hatch is defined once in index.html) and free. */
export function utilBar(busy, unavailable, total, label) {
  const t = Math.max(total, 1);
  const bw = (busy / t) * 100;
  const uw = (unavailable / t) * 100;
  const svg = s(
    "svg",
    { viewBox: "0 0 100 16", preserveAspectRatio: "none", role: "img", "aria-label": label },
    s("rect", { x: 0, y: 0, width: 100, height: 16, fill: "#dbe4f3", rx: 2 }),
    s("rect", { x: 0, y: 0, width: bw, height: 16, fill: "#1d4ed8" }),
    s("rect", { x: bw, y: 0, width: uw, height: 16, fill: "url(#hatch)" }),
  );
  return svg;
}

/** Two thin bars, guaranteed (outline) over actual (solid), on a common scale ``max``. */
export function shareBar(guaranteed, actual, max, label) {
  const w = (v) => Math.min(100, (v / Math.max(max, 1e-9)) * 100);
  return s(
    "svg",
    { class: "sharebar", viewBox: "0 0 100 14", preserveAspectRatio: "none", role: "img", "aria-label": label },
    s("rect", { x: 0, y: 1, width: 100, height: 5, fill: "#eef0f3" }),
    s("rect", { x: 0, y: 1, width: w(guaranteed), height: 5, fill: "#94a3b8" }),
    s("rect", { x: 0, y: 8, width: 100, height: 5, fill: "#eef0f3" }),
    s("rect", { x: 0, y: 8, width: w(actual), height: 5, fill: "#1d4ed8" }),
  );
}

/** Sequential blue scale (ColorBrewer Blues): utilisation 0..1 to a colour and text colour. */
const BLUES = [
  [238, 244, 251],
  [198, 219, 239],
  [107, 174, 214],
  [33, 113, 181],
  [8, 48, 107],
];
/** WCAG 2 relative luminance of an sRGB colour given as [r, g, b] in 0..255. */
export function luminance(rgb) {
  const [r, g, b] = rgb.map((v) => {
    const c = v / 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

export function heatColor(frac) {
  const f = Math.min(1, Math.max(0, frac || 0)) * (BLUES.length - 1);
  const i = Math.min(BLUES.length - 2, Math.floor(f));
  const k = f - i;
  const c = BLUES[i].map((v, j) => Math.round(v + (BLUES[i + 1][j] - v) * k));
  // Text in black or white, whichever contrasts more: one of the two is always >= 4.58:1
  // (they tie at luminance 0.179), so every cell's label meets WCAG AA (4.5:1).
  const lum = luminance(c);
  const dark = (1.05 / (lum + 0.05)) > ((lum + 0.05) / 0.05);
  return { bg: `rgb(${c[0]}, ${c[1]}, ${c[2]})`, dark, fg: dark ? "#ffffff" : "#000000" };
}
