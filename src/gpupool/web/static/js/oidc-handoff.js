// The end of a sign-in with OpenID Connect: the service's callback page carries the new
// session token in a data attribute; keep it where the dashboard keeps its token (token.set:
// localStorage, shared by this browser's tabs), take it out of the page, and open the
// dashboard (where the sign-in started: sessionStorage's "gpupool.after", this tab's own).
import { token } from "./api.js";

const el = document.getElementById("oidc-handoff");
const t = el?.dataset.token;
if (t) {
  token.set(t);
  el.removeAttribute("data-token");
  const after = sessionStorage.getItem("gpupool.after");
  sessionStorage.removeItem("gpupool.after");
  location.replace(`/${after && !after.startsWith("#/signin") ? after : "#/overview"}`);
}
