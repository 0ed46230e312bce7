// The selected section's own settings: name, length, tempo, key, lock, order, delete.

import { h, setValue } from "../dom.js";

export class SectionPanel {
  constructor({ store, app }) {
    this.store = store;
    this.app = app;
    const cmd = (type, fields) => app.run(store.command(type, { section: app.selectedSection, ...fields }));
    this.heading = h("h2", { class: "section-heading" }, "Section");
    this.name = h("input", { id: "sec-name", type: "text", maxlength: 200, onchange: () => this.name.value.trim() && cmd("section.rename", { name: this.name.value.trim() }) });
    this.bars = h("input", { id: "sec-bars", type: "number", min: 1, max: 1024, step: 1, inputmode: "numeric", onchange: () => {
      const bars = Math.round(Number(this.bars.value));
      if (bars >= 1 && bars <= 1024) cmd("section.resize", { bars });
    } });
    this.tempo = h("input", { id: "sec-tempo", type: "number", min: 20, max: 400, step: "any", placeholder: "session", inputmode: "decimal", onchange: () => this.#props() });
    this.key = h("input", { id: "sec-key", type: "text", list: "key-list", maxlength: 32, placeholder: "session", onchange: () => this.#props() });
    this.lock = h("input", { id: "sec-lock", type: "checkbox", onchange: () => cmd("section.lock", { locked: this.lock.checked }) });
    this.earlier = h("button", { type: "button", class: "btn btn-ghost", "aria-label": "Move section earlier", onclick: () => this.#move(-1) }, "◀ Earlier");
    this.later = h("button", { type: "button", class: "btn btn-ghost", "aria-label": "Move section later", onclick: () => this.#move(1) }, "Later ▶");
    this.remove = h("button", { type: "button", class: "btn btn-danger", "aria-label": "Delete section", onclick: () => cmd("section.remove", {}) }, "Delete");
    this.element = h(
      "div",
      { class: "section-panel" },
      this.heading,
      h("div", { class: "section-props" },
        h("label", { class: "field grow", for: "sec-name" }, h("span", {}, "Name"), this.name),
        h("label", { class: "field narrow", for: "sec-bars" }, h("span", {}, "Bars"), this.bars),
        h("label", { class: "field narrow", for: "sec-tempo" }, h("span", {}, "Tempo"), this.tempo),
        h("label", { class: "field", for: "sec-key" }, h("span", {}, "Key"), this.key),
        h("div", { class: "check" }, this.lock, h("label", { for: "sec-lock" }, "Locked")),
      ),
      h("div", { class: "section-buttons" }, this.earlier, this.later, this.remove),
    );
  }

  #props() {
    const tempo = this.tempo.value.trim() === "" ? null : Number(this.tempo.value);
    if (tempo !== null && !(tempo > 0 && tempo <= 400)) return;
    this.app.run(this.store.command("section.set_props", { section: this.app.selectedSection, tempo, key: this.key.value.trim() || null }));
  }

  #move(delta) {
    const ids = this.store.session.sections.map((s) => s.id);
    const i = ids.indexOf(this.app.selectedSection);
    const j = i + delta;
    if (i < 0 || j < 0 || j >= ids.length) return;
    this.app.moveSection(this.app.selectedSection, j);
  }

  update() {
    const s = this.store.session;
    const sec = s?.sections.find((x) => x.id === this.app.selectedSection);
    this.element.hidden = !sec;
    if (!sec) return;
    const index = s.sections.indexOf(sec);
    this.heading.textContent = `${sec.name}`;
    setValue(this.name, sec.name);
    setValue(this.bars, sec.bars);
    setValue(this.tempo, sec.tempo ?? "");
    setValue(this.key, sec.key ?? "");
    this.lock.checked = Boolean(sec.locked);
    this.earlier.disabled = index <= 0;
    this.later.disabled = index >= s.sections.length - 1;
  }
}
