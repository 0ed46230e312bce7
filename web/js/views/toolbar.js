// The session header: title, tempo, meter, key, undo/redo, transport and render.

import { h, setValue, fmt } from "../dom.js";
import { beatsPerBar } from "../session-model.js";

const KEYS = ["C", "C#", "Db", "D", "Eb", "E", "F", "F#", "Gb", "G", "Ab", "A", "Bb", "B"].flatMap((k) => [`${k} major`, `${k} minor`]);

export class Toolbar {
  constructor({ store, app }) {
    this.store = store;
    this.app = app;
    const cmd = (type, fields) => app.run(store.command(type, fields));
    this.title = h("input", { type: "text", class: "title-input", "aria-label": "Session title", maxlength: 200, onchange: () => this.title.value.trim() && cmd("session.rename", { title: this.title.value.trim() }) });
    this.tempo = h("input", { id: "tempo", type: "number", min: 20, max: 400, step: "any", inputmode: "decimal", onchange: () => {
      const bpm = Number(this.tempo.value);
      if (bpm > 0 && bpm <= 400) cmd("session.set_tempo", { bpm });
    } });
    this.num = h("input", { id: "meter-num", type: "number", min: 1, max: 32, step: 1, "aria-label": "Beats per bar", onchange: () => this.#setMeter() });
    this.den = h("select", { id: "meter-den", "aria-label": "Beat unit", onchange: () => this.#setMeter() }, [1, 2, 4, 8, 16, 32].map((d) => h("option", { value: d }, d)));
    this.key = h("input", { id: "key", type: "text", list: "key-list", maxlength: 32, placeholder: "none", onchange: () => cmd("session.set_key", { key: this.key.value.trim() || null }) });
    this.undoBtn = h("button", { type: "button", class: "icon-btn", "aria-label": "Undo", title: "Undo (Ctrl+Z)", onclick: () => app.undo() }, "↶");
    this.redoBtn = h("button", { type: "button", class: "icon-btn", "aria-label": "Redo", title: "Redo (Ctrl+Shift+Z)", onclick: () => app.redo() }, "↷");
    this.playBtn = h("button", { type: "button", class: "play-btn", "aria-label": "Play arrangement", title: "Play / stop (Space)", "aria-pressed": "false", onclick: () => app.togglePlay() }, "▶");
    this.position = h("output", { class: "position", "aria-label": "Playhead position", "aria-live": "off" }, "1.1 · 0:00");
    this.mode = h("span", { class: "transport-mode", role: "status" }, "Local transport");
    this.renderBtn = h("button", { type: "button", class: "btn", onclick: () => app.renderSession() }, "Render");
    this.download = h("a", { class: "btn btn-ghost download-render", hidden: true, "aria-label": "Download rendered arrangement as MIDI" }, "⤓ MIDI");
    this.element = h(
      "section",
      { class: "toolbar", "aria-label": "Session settings and transport" },
      h("div", { class: "toolbar-row" },
        h("a", { href: "#/", class: "back", "aria-label": "All sessions" }, "←"),
        this.title,
        h("div", { class: "history" }, this.undoBtn, this.redoBtn),
      ),
      h("div", { class: "toolbar-row settings" },
        h("label", { class: "field", for: "tempo" }, h("span", {}, "Tempo"), this.tempo),
        h("div", { class: "field", role: "group", "aria-label": "Meter" }, h("span", {}, "Meter"), h("div", { class: "meter" }, this.num, h("span", { "aria-hidden": "true" }, "/"), this.den)),
        h("label", { class: "field", for: "key" }, h("span", {}, "Key"), this.key),
        h("datalist", { id: "key-list" }, KEYS.map((k) => h("option", { value: k }))),
        h("div", { class: "transport" }, this.playBtn, h("div", { class: "transport-text" }, this.position, this.mode)),
        h("div", { class: "render" }, this.renderBtn, this.download),
      ),
    );
  }

  #setMeter() {
    const numerator = Number(this.num.value);
    const denominator = Number(this.den.value);
    if (Number.isInteger(numerator) && numerator >= 1 && numerator <= 32) {
      this.app.run(this.store.command("session.set_meter", { meter: { numerator, denominator } }));
    }
  }

  update() {
    const s = this.store.session;
    if (!s) return;
    setValue(this.title, s.title);
    setValue(this.tempo, fmt.num(s.tempo, 2));
    setValue(this.num, s.meter.numerator);
    setValue(this.den, s.meter.denominator);
    setValue(this.key, s.key ?? "");
    const u = this.store.undo || { undo: 0, redo: 0 };
    this.undoBtn.disabled = !u.undo;
    this.redoBtn.disabled = !u.redo;
  }

  showRender(artifact) {
    this.download.href = artifact.url;
    this.download.download = artifact.filename || "arrangement.mid";
    this.download.hidden = false;
  }

  updateTransport(transport, beat, seconds, holderName) {
    const s = this.store.session;
    const bpb = s ? beatsPerBar(s.meter) : 4;
    const bar = Math.floor(beat / bpb) + 1;
    const inBar = Math.floor(beat - (bar - 1) * bpb) + 1;
    this.position.textContent = `${bar}.${inBar} · ${fmt.time(seconds)}`;
    const playing = transport.playing;
    this.playBtn.textContent = playing ? "■" : "▶";
    this.playBtn.setAttribute("aria-pressed", String(playing));
    this.playBtn.setAttribute("aria-label", playing ? "Stop arrangement" : "Play arrangement");
    const text = transport.following ? `Following ${holderName || "the DAW"}` : "Local transport";
    if (this.mode.textContent !== text) this.mode.textContent = text;
    this.playBtn.disabled = transport.following;
  }
}
