// The list of sessions on the hub, and a form to create one.

import { h, replaceChildren, fmt } from "../dom.js";

export class SessionList {
  constructor({ store, app }) {
    this.store = store;
    this.app = app;
    this.titleInput = h("input", { id: "new-title", type: "text", maxlength: 200, placeholder: "Night drive", required: true });
    this.tempoInput = h("input", { id: "new-tempo", type: "number", min: 20, max: 400, step: "any", value: 120, inputmode: "decimal" });
    this.numInput = h("input", { id: "new-num", type: "number", min: 1, max: 32, step: 1, value: 4, "aria-label": "Beats per bar" });
    this.denInput = h("select", { id: "new-den", "aria-label": "Beat unit" }, [2, 4, 8, 16].map((d) => h("option", { value: d, selected: d === 4 }, d)));
    this.keyInput = h("input", { id: "new-key", type: "text", list: "key-list-new", maxlength: 32, placeholder: "optional" });
    this.list = h("ul", { class: "session-list", "aria-label": "Sessions" });
    this.element = h(
      "div",
      { class: "sessions-view" },
      h("section", { class: "card create", "aria-labelledby": "create-heading" },
        h("h2", { id: "create-heading" }, "New session"),
        h("form", { class: "create-form", onsubmit: (e) => {
          e.preventDefault();
          this.#create();
        } },
          h("label", { class: "field grow", for: "new-title" }, h("span", {}, "Title"), this.titleInput),
          h("label", { class: "field narrow", for: "new-tempo" }, h("span", {}, "Tempo"), this.tempoInput),
          h("div", { class: "field", role: "group", "aria-label": "Meter" }, h("span", {}, "Meter"), h("div", { class: "meter" }, this.numInput, h("span", { "aria-hidden": "true" }, "/"), this.denInput)),
          h("label", { class: "field", for: "new-key" }, h("span", {}, "Key"), this.keyInput),
          h("datalist", { id: "key-list-new" }, ["C major", "A minor", "G major", "E minor", "D major", "B minor", "F major", "D minor"].map((k) => h("option", { value: k }))),
          h("button", { type: "submit", class: "btn btn-primary", id: "create-session" }, "Create session"),
        ),
      ),
      h("section", { class: "card", "aria-labelledby": "list-heading" },
        h("div", { class: "list-head" }, h("h2", { id: "list-heading" }, "Sessions"),
          h("button", { type: "button", class: "btn btn-ghost small", onclick: () => app.run(store.refreshSessions()) }, "Refresh")),
        this.list,
      ),
    );
  }

  async #create() {
    const title = this.titleInput.value.trim() || "Untitled";
    const tempo = Number(this.tempoInput.value) || 120;
    const meter = { numerator: Number(this.numInput.value) || 4, denominator: Number(this.denInput.value) || 4 };
    const key = this.keyInput.value.trim() || null;
    const ack = await this.app.run(this.store.conn.request({ type: "session.create", title, tempo, meter, key }));
    if (ack?.session) {
      this.titleInput.value = "";
      location.hash = `#/s/${ack.session}`;
    }
  }

  update() {
    const sessions = [...this.store.sessions].reverse();
    if (!sessions.length) {
      replaceChildren(this.list, h("li", { class: "empty" }, "No sessions yet."));
      return;
    }
    replaceChildren(
      this.list,
      sessions.map((s) =>
        h("li", { class: "session-item" },
          h("a", { href: `#/s/${s.id}`, class: "session-link", "aria-label": `Open session ${s.title}` },
            h("strong", {}, s.title),
            h("span", { class: "muted" }, `${fmt.num(s.tempo, 1)} BPM · ${s.meter.numerator}/${s.meter.denominator}${s.key ? ` · ${s.key}` : ""} · ${s.sections} section${s.sections === 1 ? "" : "s"}`)),
          h("button", { type: "button", class: "btn btn-ghost small danger", "aria-label": `Delete session ${s.title}`, onclick: () => this.app.deleteSession(s) }, "Delete"),
        ),
      ),
    );
  }
}
