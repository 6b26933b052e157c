// Building DOM without innerHTML: every piece of text goes in as text, never as markup, so a
// job name or log line can never inject script (and the page's CSP forbids inline styles:
// styles are set through the CSSOM, which it allows).
const SVG_NS = "http://www.w3.org/2000/svg";

function apply(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.setAttribute("class", Array.isArray(v) ? v.filter(Boolean).join(" ") : v);
    else if (k === "text") el.textContent = String(v);
    else if (k === "style") Object.assign(el.style, v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "value" && "value" in el) el.value = v;
    else if (k === "checked" || k === "selected" || k === "disabled") el[k] = Boolean(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** An HTML element: h("a", {href: "#/queue", class: "x"}, "text", child, ...). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

let toastTimer = 0;
/** A short message in the corner (also read out by screen readers: role=status). */
export function toast(message) {
  // While the API does not answer, the connection banner says so: no popups on top of it.
  if (document.body.classList.contains("offline")) return;
  const t = document.getElementById("toast");
  t.textContent = message;
  t.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => t.classList.remove("show"), 4000);
}

/** A select box: options as [value, label] pairs or plain values. */
export function select(attrs, options, current) {
  const el = h("select", attrs);
  for (const o of options) {
    const [value, label] = Array.isArray(o) ? o : [o, o];
    el.append(h("option", { value, selected: String(value) === String(current ?? "") }, label));
  }
  return el;
}

export function field(label, control, id) {
  control.id = control.id || id;
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control);
}
