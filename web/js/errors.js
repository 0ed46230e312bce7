// Errors in plain words: the hub's error shape {code, message, details, suggestions}
// becomes one sentence a musician can act on, shown in a dismissable toast.

import { h } from "./dom.js";

const PLAIN = {
  invalid_message: "The hub could not read that request.",
  invalid_json: "The hub could not read that request.",
  validation_failed: "Some values are not allowed.",
  unknown_session: "That session no longer exists.",
  unknown_section: "That section no longer exists.",
  unknown_take: "That take no longer exists.",
  unknown_artifact: "That file is no longer on the hub.",
  section_locked: "This section is locked; unlock it first.",
  nothing_to_undo: "Nothing to undo.",
  nothing_to_redo: "Nothing to redo.",
  conflict: "That clashes with the current state.",
  unknown_engine: "That engine is not installed on the hub.",
  unknown_task: "That engine cannot do this task.",
  engine_unavailable: "That engine cannot run right now.",
  engine_error: "The engine failed while generating.",
  worker_crashed: "The engine crashed while generating.",
  job_not_found: "The hub does not know that job.",
  job_expired: "That job finished too long ago; its record is gone.",
  job_finished: "That job has already finished.",
  interrupted: "The hub restarted while this job ran.",
  transport_not_held: "Another client controls the transport.",
  invalid_midi: "That file is not a valid MIDI file.",
  payload_too_large: "That file is too large for the hub.",
  rate_limited: "Too many requests; wait a moment.",
  not_authorized: "The hub needs a valid token.",
  forbidden_origin: "This page is not allowed to talk to the hub.",
  outcome_unknown: "The connection dropped before the hub answered.",
  internal_error: "The hub hit a bug; the request did not finish.",
  network: "Could not reach the hub.",
};

function fieldErrors(details) {
  const errs = details?.errors;
  if (!Array.isArray(errs) || !errs.length) return "";
  return errs
    .slice(0, 3)
    .map((e) => `${(e.loc || []).filter((x) => x !== "body").join(".") || "value"}: ${e.msg}`)
    .join("; ");
}

/** One plain sentence (plus detail) for an error-shaped object or an Error. */
export function plainError(err) {
  const code = err?.code;
  const head = PLAIN[code] || (err?.message ? "" : "Something went wrong.");
  let detail = err?.message || "";
  if (code === "engine_unavailable" && err.details?.reason) detail = err.details.reason;
  if (code === "validation_failed") detail = fieldErrors(err.details) || detail;
  if (code === "nothing_to_undo" || code === "nothing_to_redo") detail = "";
  const suggestion = Array.isArray(err?.suggestions) && err.suggestions.length ? `Try: ${err.suggestions[0]}.` : "";
  return [head, detail && detail !== head ? capitalise(detail) : "", suggestion].filter(Boolean).join(" ");
}

const capitalise = (s) => s.charAt(0).toUpperCase() + s.slice(1) + (/[.!?]$/.test(s) ? "" : ".");

export class Toasts {
  constructor(container) {
    this.container = container;
  }

  show(text, { kind = "error", timeout = 8000 } = {}) {
    const close = h("button", { class: "toast-close", "aria-label": "Dismiss message", onclick: () => el.remove() }, "×");
    const el = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" }, h("span", {}, text), close);
    this.container.append(el);
    while (this.container.children.length > 4) this.container.firstElementChild.remove();
    if (timeout) setTimeout(() => el.remove(), timeout);
    return el;
  }

  error(err) {
    console.warn("tutti error", err);
    return this.show(plainError(err), { kind: "error" });
  }

  info(text) {
    return this.show(text, { kind: "info", timeout: 4000 });
  }
}
