// The dashboard's languages: one message catalogue per language (/ui/i18n/<lang>.json, the
// same keys in each), the user's choice kept in localStorage ("gpupool.lang"), else the
// browser's first language we have (navigator.languages), else English.
//
// t("key", {name: value}) fills {name} placeholders; a value that is an object is a plural
// ({one, other}: Intl.PluralRules picks the form from the "n" parameter). A key missing from
// the catalogue is a bug: it is logged as a console error (the browser tests fail on those),
// kept in window.gpupoolMissingKeys, and the key itself is shown.
export const LANGS = [
  ["ko", "한국어"],
  ["en", "English"],
];
const LANG_KEY = "gpupool.lang";
/** The locale each language formats numbers and dates with. */
const LOCALES = { en: "en-US", ko: "ko-KR" };

function pick() {
  const stored = localStorage.getItem(LANG_KEY);
  if (LANGS.some(([l]) => l === stored)) return stored;
  for (const tag of navigator.languages || [navigator.language || "en"]) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (LANGS.some(([l]) => l === base)) return base;
  }
  return "en";
}

export const lang = pick();
export const locale = LOCALES[lang];
const missing = new Set();
window.gpupoolMissingKeys = missing;

async function load(l) {
  const resp = await fetch(`/ui/i18n/${l}.json`, { cache: "no-cache" });
  if (!resp.ok) throw new Error(`catalogue ${l}: HTTP ${resp.status}`);
  return resp.json();
}

let messages = {};
try {
  messages = await load(lang);
} catch (e) {
  console.error(`i18n: ${e.message}`);
}
const plurals = new Intl.PluralRules(locale);

/** The message ``key`` in the user's language, with {placeholders} filled from ``params``. */
export function t(key, params = {}) {
  let m = messages[key];
  if (m === undefined) {
    if (!missing.has(key)) {
      missing.add(key);
      console.error(`i18n: missing key "${key}" (${lang})`);
    }
    return key;
  }
  if (typeof m === "object") m = m[plurals.select(Number(params.n ?? 0))] ?? m.other;
  return m.replace(/\{(\w+)\}/g, (all, name) => (name in params ? String(params[name]) : all));
}

/** Change the language: stored for every tab of this browser, applied by reloading. */
export function setLang(l) {
  localStorage.setItem(LANG_KEY, l);
  location.reload();
}

/** Text of the static page (index.html): elements with data-i18n (text) or data-i18n-label. */
export function translatePage(root = document) {
  document.documentElement.lang = lang;
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
}
