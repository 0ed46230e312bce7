// Per-section actions: an engine/model picker showing availability, the engine's tasks,
// and a parameter form rendered from the task's JSON Schema (see schema-form.js).

import { h, replaceChildren } from "../dom.js";
import { schemaForm } from "../schema-form.js";

const QUICK = ["generate", "continue", "bridge", "loop", "accompany", "infill"];
const capital = (s) => s.charAt(0).toUpperCase() + s.slice(1).replace(/_/g, " ");

export class Actions {
  engine = null;
  task = null;
  #formKey = "";
  #form = null;

  constructor({ store, app }) {
    this.store = store;
    this.app = app;
    this.engineSelect = h("select", { id: "engine", onchange: () => this.#pick(this.engineSelect.value, null) });
    this.taskSelect = h("select", { id: "task", onchange: () => this.#pick(this.engine, this.taskSelect.value) });
    this.quick = h("div", { class: "quick", role: "group", "aria-label": "Musical tasks" });
    this.availability = h("p", { class: "availability", role: "status" });
    this.description = h("p", { class: "task-desc" });
    this.params = h("div", { class: "params" });
    this.variations = h("input", { id: "variations", type: "number", min: 1, max: 8, step: 1, value: 1, inputmode: "numeric" });
    this.runBtn = h("button", { type: "submit", class: "btn btn-primary run", id: "run-job" }, "Run");
    this.element = h(
      "form",
      { class: "actions", "aria-label": "Generate or transform this section", onsubmit: (e) => {
        e.preventDefault();
        this.run();
      } },
      this.quick,
      h("div", { class: "pickers" },
        h("label", { class: "field", for: "engine" }, h("span", {}, "Engine / model"), this.engineSelect),
        h("label", { class: "field", for: "task" }, h("span", {}, "Task"), this.taskSelect),
        h("label", { class: "field narrow", for: "variations" }, h("span", {}, "Variations"), this.variations),
      ),
      this.availability,
      this.description,
      this.params,
      h("div", { class: "run-row" }, this.runBtn, h("small", { class: "hint" }, "Shortcut: G")),
    );
  }

  get engines() {
    return this.store.engines || [];
  }

  #pick(engineName, taskName) {
    const engine = this.engines.find((e) => e.name === engineName) || this.engines[0];
    if (!engine) return;
    this.engine = engine.name;
    const task = engine.tasks.find((t) => t.name === taskName) || engine.tasks[0];
    this.task = task?.name ?? null;
    this.#formKey = "";
    this.update();
  }

  /** Choose a task by name on the first engine that has it (available engines first). */
  pickTask(taskName) {
    const engines = [...this.engines].sort((a, b) => Number(b.available) - Number(a.available));
    const engine = engines.find((e) => e.tasks.some((t) => t.name === taskName));
    if (engine) this.#pick(engine.name, taskName);
  }

  update() {
    const engines = this.engines;
    if (!engines.length) {
      this.availability.textContent = "The hub has no engines.";
      this.runBtn.disabled = true;
      return;
    }
    if (!this.engine || !engines.some((e) => e.name === this.engine)) {
      const first = engines.find((e) => e.available && e.name === "amt") || engines.find((e) => e.available) || engines[0];
      this.engine = first.name;
      this.task = first.tasks[0]?.name ?? null;
    }
    const engine = engines.find((e) => e.name === this.engine);
    const task = engine.tasks.find((t) => t.name === this.task) || engine.tasks[0];
    this.task = task?.name ?? null;

    replaceChildren(
      this.engineSelect,
      engines.map((e) =>
        h("option", { value: e.name, selected: e.name === engine.name }, `${e.name}${e.model ? ` · ${e.model}` : ""}${e.available ? "" : " — unavailable"}`),
      ),
    );
    replaceChildren(this.taskSelect, engine.tasks.map((t) => h("option", { value: t.name, selected: t.name === this.task }, capital(t.name))));
    const quickTasks = QUICK.filter((name) => engines.some((e) => e.tasks.some((t) => t.name === name)));
    replaceChildren(
      this.quick,
      quickTasks.map((name) => {
        const owner = engines.find((e) => e.tasks.some((t) => t.name === name));
        return h("button", {
          type: "button",
          class: `chip${this.task === name ? " active" : ""}${owner.available ? "" : " unavailable"}`,
          "aria-pressed": String(this.task === name),
          title: owner.available ? `${capital(name)} with ${owner.name}` : `${owner.name} is unavailable: ${owner.reason || "no reason given"}`,
          onclick: () => this.pickTask(name),
        }, capital(name));
      }),
    );
    this.availability.textContent = engine.available
      ? `${engine.name} ${engine.version}${engine.device ? ` on ${engine.device}` : ""} is ready.`
      : `${engine.name} is unavailable: ${engine.reason || "no reason given"}.`;
    this.availability.classList.toggle("warn", !engine.available);
    this.description.textContent = task ? `${task.description}${task.constraints?.length ? ` (${task.constraints.join("; ")})` : ""}` : "";
    const section = this.app.selectedSection;
    const sectionName = this.store.session?.sections.find((s) => s.id === section)?.name ?? "section";
    this.runBtn.textContent = task ? capital(task.name) : "Run";
    this.runBtn.setAttribute("aria-label", task ? `${capital(task.name)} ${sectionName} with ${engine.name}` : "Run");
    this.runBtn.disabled = !task || !engine.available || !section;
    this.#renderForm(engine, task);
  }

  #artifactOptions() {
    const s = this.store.session;
    if (!s) return [];
    const out = [];
    for (const sec of s.sections) {
      sec.takes.forEach((t, i) => {
        const chosen = sec.chosen_take === t.id ? " ✓" : "";
        out.push({ id: t.artifact_id, label: `${sec.name} · ${t.label || `take ${i + 1}`}${chosen}` });
      });
    }
    return out;
  }

  #preset(task) {
    const s = this.store.session;
    const idx = s?.sections.findIndex((x) => x.id === this.app.selectedSection) ?? -1;
    if (!s || idx < 0) return {};
    const chosenOf = (sec) => sec && (sec.takes.find((t) => t.id === sec.chosen_take) || sec.takes.at(-1));
    const here = chosenOf(s.sections[idx]);
    const prev = chosenOf(s.sections[idx - 1]);
    const next = chosenOf(s.sections[idx + 1]);
    const preset = {};
    const props = task?.params_schema?.properties || {};
    for (const name of Object.keys(props)) {
      if (!/artifact|prompt|context/i.test(name) && !/^(before|after|next|previous|prev)/i.test(name)) continue;
      let take;
      if (/^b_|next|after|end|right/i.test(name)) take = next;
      else if (/^a_/i.test(name)) take = prev;
      else if (/prev|before|start|left|prompt|context/i.test(name) || task.name === "continue") take = prev || here;
      else take = here || prev;
      if (take) preset[name] = take.artifact_id;
    }
    return preset;
  }

  #renderForm(engine, task) {
    const options = this.#artifactOptions();
    const key = `${engine.name}/${task?.name}/${this.app.selectedSection}/${options.map((o) => o.id + o.label).join(",")}`;
    if (key === this.#formKey) return;
    if (this.#form && this.params.contains(document.activeElement) && key.startsWith(`${engine.name}/${task?.name}/${this.app.selectedSection}/`)) return;
    const keep = this.#form && this.#formKey.startsWith(`${engine.name}/${task?.name}/`) ? this.#form.read().params : {};
    this.#formKey = key;
    if (!task) {
      this.#form = null;
      replaceChildren(this.params);
      return;
    }
    this.#form = schemaForm(task.params_schema, { artifacts: options, preset: { ...this.#preset(task), ...keep } });
    replaceChildren(this.params, this.#form.element);
  }

  async run() {
    const engine = this.engines.find((e) => e.name === this.engine);
    if (!engine || !this.task || !this.#form) return;
    if (!engine.available) {
      this.app.toasts.error({ code: "engine_unavailable", message: engine.reason || `${engine.name} is unavailable` });
      return;
    }
    const section = this.app.selectedSection;
    if (!section) return this.app.toasts.info("Select a section first.");
    const { params, errors } = this.#form.read();
    if (errors.length) {
      this.app.toasts.error({ code: "validation_failed", message: errors.join("; ") });
      return;
    }
    const variations = Math.max(1, Math.min(8, Math.round(Number(this.variations.value) || 1)));
    const ack = await this.app.run(
      this.store.command("job.submit", { engine: engine.name, task: this.task, params, num_variations: variations, section }),
    );
    if (ack?.job) this.app.showJob(ack.job);
  }
}
