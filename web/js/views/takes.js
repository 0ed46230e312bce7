// Takes of the selected section side by side: metadata (key, density, energy), a small
// roll, audition, choose / approve / reject, download, remove; plus a MIDI drop zone.

import { h, replaceChildren, fmt } from "../dom.js";
import { PianoRoll } from "../pianoroll.js";

export class TakesView {
  #cards = new Map(); // take id -> card

  constructor({ store, app }) {
    this.store = store;
    this.app = app;
    this.grid = h("div", { class: "takes-grid" });
    this.fileInput = h("input", { type: "file", accept: ".mid,.midi,audio/midi", id: "take-file", class: "visually-hidden", multiple: true, onchange: () => {
      for (const f of this.fileInput.files) this.app.uploadTake(this.app.selectedSection, f);
      this.fileInput.value = "";
    } });
    this.drop = h(
      "div",
      { class: "dropzone" },
      h("span", {}, "Drop a MIDI file here to add it as a take, or "),
      h("label", { for: "take-file", class: "linklike" }, "choose a file"),
      this.fileInput,
    );
    this.#bindDrop(this.drop);
    this.heading = h("h3", {}, "Takes");
    this.element = h("section", { class: "takes", "aria-label": "Takes" }, this.heading, this.grid, this.drop);
  }

  #bindDrop(el) {
    el.addEventListener("dragover", (e) => {
      if (![...e.dataTransfer.types].includes("Files")) return;
      e.preventDefault();
      el.classList.add("over");
    });
    el.addEventListener("dragleave", () => el.classList.remove("over"));
    el.addEventListener("drop", (e) => {
      e.preventDefault();
      el.classList.remove("over");
      for (const f of e.dataTransfer.files) this.app.uploadTake(this.app.selectedSection, f);
    });
  }

  update() {
    const s = this.store.session;
    const sec = s?.sections.find((x) => x.id === this.app.selectedSection);
    this.element.hidden = !sec;
    if (!sec) return;
    this.heading.textContent = `Takes of ${sec.name} (${sec.takes.length})`;
    const seen = new Set();
    const cards = sec.takes.map((take, i) => {
      seen.add(take.id);
      let card = this.#cards.get(take.id);
      if (!card) {
        card = this.#makeCard(take);
        this.#cards.set(take.id, card);
      }
      this.#fill(card, sec, take, i);
      return card.el;
    });
    for (const [id, card] of this.#cards) {
      if (!seen.has(id)) {
        card.roll.destroy();
        this.#cards.delete(id);
      }
    }
    if (cards.length) replaceChildren(this.grid, cards);
    else replaceChildren(this.grid, h("p", { class: "empty" }, "No takes yet. Generate some, or drop a MIDI file."));
  }

  #makeCard(take) {
    const canvas = h("canvas", { class: "mini-roll" });
    const roll = new PianoRoll(canvas, { label: "Take notes", interactive: false });
    const title = h("h4", {});
    const badges = h("div", { class: "badges" });
    const meta = h("dl", { class: "meta" });
    const play = h("button", { type: "button", class: "btn small", onclick: () => this.app.audition(take, card) });
    const choose = h("button", { type: "button", class: "btn small", onclick: () => this.app.chooseTake(take.id) });
    const approve = h("button", { type: "button", class: "btn btn-ghost small", onclick: () => this.app.takeCommand("take.approve", take.id) }, "Approve");
    const reject = h("button", { type: "button", class: "btn btn-ghost small", onclick: () => this.app.takeCommand("take.reject", take.id) }, "Reject");
    const open = h("button", { type: "button", class: "btn btn-ghost small", onclick: () => this.app.openTakeInRoll(take, card.label) }, "Open");
    const download = h("a", { class: "btn btn-ghost small download-take" }, "⤓ MIDI");
    const remove = h("button", { type: "button", class: "btn btn-ghost small danger", onclick: () => this.app.takeCommand("take.remove", take.id) }, "Remove");
    const el = h("article", { class: "take", dataset: { take: take.id } }, h("header", {}, title, badges), canvas, meta,
      h("div", { class: "take-buttons" }, play, choose, approve, reject, open, download, remove));
    const card = { el, canvas, roll, title, badges, meta, play, choose, approve, reject, open, download, remove, loaded: false, label: "" };
    this.store.midiOf(take.artifact_id).then((midi) => {
      roll.setNotes(midi.notes);
      card.loaded = true;
    }, () => {});
    return card;
  }

  #fill(card, sec, take, i) {
    const label = take.label ? `Take ${i + 1}: ${take.label}` : `Take ${i + 1}`;
    card.label = label;
    const chosen = sec.chosen_take === take.id;
    card.title.textContent = label;
    card.el.classList.toggle("chosen", chosen);
    card.el.dataset.status = take.status;
    replaceChildren(card.badges,
      chosen ? h("span", { class: "badge chosen" }, "chosen") : null,
      h("span", { class: `badge status-${take.status}` }, take.status));
    const art = this.store.artifacts.get(take.artifact_id);
    const m = art?.metadata || {};
    const rows = [
      ["Key", m.key ? `${m.key}${m.key_confidence ? ` (${Math.round(m.key_confidence * 100)}%)` : ""}` : "–"],
      ["Density", m.density ? `${m.density.label}, ${fmt.num(m.density.notes_per_second, 1)}/s` : "–"],
      ["Energy", m.energy ? `${fmt.num(m.energy.start, 2)} → ${fmt.num(m.energy.peak, 2)} → ${fmt.num(m.energy.end, 2)}` : "–"],
      ["Notes", m.note_count ?? m.notes ?? "–"],
    ];
    replaceChildren(card.meta, rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))]));
    const playing = this.app.auditioning === take.id;
    card.play.textContent = playing ? "■ Stop" : "▶ Play";
    card.play.setAttribute("aria-label", `${playing ? "Stop" : "Play"} ${label}`);
    card.choose.textContent = chosen ? "Chosen ✓" : "Choose";
    card.choose.setAttribute("aria-pressed", String(chosen));
    card.choose.setAttribute("aria-label", `Choose ${label} for ${sec.name}`);
    card.approve.setAttribute("aria-label", `Approve ${label}`);
    card.approve.disabled = take.status === "approved";
    card.reject.setAttribute("aria-label", `Reject ${label}`);
    card.reject.disabled = take.status === "rejected";
    card.open.setAttribute("aria-label", `Open ${label} in the piano roll`);
    card.remove.setAttribute("aria-label", `Remove ${label}`);
    card.download.setAttribute("aria-label", `Download ${label} as MIDI`);
    if (art?.url) {
      card.download.href = art.url;
      card.download.download = art.filename || `${sec.name}-take${i + 1}.mid`;
      card.download.removeAttribute("aria-disabled");
    } else {
      card.download.removeAttribute("href");
      card.download.setAttribute("aria-disabled", "true");
    }
  }

  setAuditionPlayhead(takeId, beat) {
    for (const [id, card] of this.#cards) card.roll.setPlayhead(id === takeId ? beat : null);
  }
}
