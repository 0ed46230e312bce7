// Parameter forms rendered from an engine task's JSON Schema (pydantic output), so a new
// engine parameter appears in the UI without code changes.
//
// Handles: integer / number (with bounds), boolean, string, enum / const (select),
// nullable (anyOf [T, null]: empty means null), number-or-string unions, arrays of
// strings or numbers (comma separated), artifact references (a picker of the session's
// takes), and $ref into $defs. Unknown shapes fall back to a JSON text field.

import { h } from "./dom.js";

let formSeq = 0;

function deref(schema, root) {
  let s = schema;
  for (let i = 0; i < 8 && s && s.$ref; i++) {
    const name = s.$ref.split("/").pop();
    s = { ...(root.$defs?.[name] ?? root.definitions?.[name] ?? {}), ...s, $ref: undefined };
  }
  return s || {};
}

/** Collapse a property schema to {kind, nullable, ...bounds}. */
export function describeField(name, prop, root) {
  const s = deref(prop, root);
  let variants = s.anyOf || s.oneOf;
  let nullable = false;
  let base = s;
  if (variants) {
    variants = variants.map((v) => deref(v, root));
    nullable = variants.some((v) => v.type === "null");
    const rest = variants.filter((v) => v.type !== "null");
    if (rest.length === 1) base = { ...rest[0] };
    else base = { type: rest.map((v) => v.type), variants: rest };
  }
  if (Array.isArray(base.type) && base.type.includes("null")) {
    nullable = true;
    base = { ...base, type: base.type.filter((t) => t !== "null") };
    if (base.type.length === 1) base.type = base.type[0];
  }
  const desc = `${prop.description || s.description || ""}`;
  const isArtifact = /artifact/i.test(name) || /\bid of the (midi )?artifact/i.test(desc);
  const field = {
    name,
    title: prop.title || s.title || name.replace(/_/g, " "),
    description: desc,
    default: "default" in prop ? prop.default : s.default,
    nullable,
    schema: base,
  };
  const enumValues = base.enum || (base.const !== undefined ? [base.const] : null);
  if (enumValues) return { ...field, kind: "enum", options: enumValues };
  if (Array.isArray(base.type)) return { ...field, kind: "union", types: base.type };
  switch (base.type) {
    case "boolean":
      return { ...field, kind: "boolean" };
    case "integer":
    case "number":
      return {
        ...field,
        kind: "number",
        integer: base.type === "integer",
        min: base.minimum ?? (base.exclusiveMinimum !== undefined ? base.exclusiveMinimum : undefined),
        max: base.maximum ?? base.exclusiveMaximum,
      };
    case "string":
      return { ...field, kind: isArtifact ? "artifact" : "string", maxLength: base.maxLength, pattern: base.pattern };
    case "array": {
      const items = deref(base.items || {}, root);
      if (isArtifact && (items.type === "string" || !items.type)) return { ...field, kind: "artifacts" };
      return { ...field, kind: "list", itemType: items.type || "string" };
    }
    default:
      return { ...field, kind: "json" };
  }
}

const shown = (v) => (v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v));

/**
 * Build the form body for `schema`. `artifacts` = [{id, label}] offered to artifact
 * fields; `preset` = {name: value} initial values (e.g. the artifact to continue).
 * Returns {element, read(), fields}; read() returns {params, errors}.
 */
export function schemaForm(schema, { artifacts = [], preset = {} } = {}) {
  const root = schema || {};
  const required = new Set(root.required || []);
  const fields = Object.entries(root.properties || {}).map(([name, prop]) => describeField(name, prop, root));
  const prefix = `pf${++formSeq}`;
  const readers = [];
  const element = h("div", { class: "param-grid" });
  for (const f of fields) {
    const id = `${prefix}-${f.name}`;
    const hintId = `${id}-hint`;
    const isRequired = required.has(f.name);
    const initial = f.name in preset ? preset[f.name] : f.default;
    let input;
    let read;
    const common = { id, name: f.name, "aria-describedby": f.description ? hintId : undefined };
    switch (f.kind) {
      case "boolean":
        input = h("input", { ...common, type: "checkbox", checked: Boolean(initial) });
        read = () => input.checked;
        break;
      case "enum":
        input = h(
          "select",
          common,
          f.nullable || !isRequired ? h("option", { value: "" }, "(default)") : null,
          f.options.map((o) => h("option", { value: shown(o), selected: shown(o) === shown(initial) }, shown(o))),
        );
        read = () => (input.value === "" ? undefined : f.options.find((o) => shown(o) === input.value));
        break;
      case "number":
        input = h("input", {
          ...common,
          type: "number",
          inputmode: f.integer ? "numeric" : "decimal",
          step: f.integer ? "1" : "any",
          min: f.min,
          max: f.max,
          value: shown(initial),
          placeholder: f.nullable ? "auto" : "",
        });
        read = () => {
          if (input.value.trim() === "") return f.nullable ? null : undefined;
          const v = Number(input.value);
          if (!Number.isFinite(v)) throw new Error(`${f.title} must be a number`);
          if (f.integer && !Number.isInteger(v)) throw new Error(`${f.title} must be a whole number`);
          if (f.min !== undefined && v < f.min) throw new Error(`${f.title} must be at least ${f.min}`);
          if (f.max !== undefined && v > f.max) throw new Error(`${f.title} must be at most ${f.max}`);
          return v;
        };
        break;
      case "artifact": {
        input = h(
          "select",
          common,
          h("option", { value: "" }, isRequired ? "(choose a take)" : "(none)"),
          artifacts.map((a) => h("option", { value: a.id, selected: a.id === initial }, a.label)),
        );
        read = () => (input.value === "" ? (f.nullable ? null : undefined) : input.value);
        break;
      }
      case "artifacts": {
        const chosen = new Set(Array.isArray(initial) ? initial : []);
        input = h(
          "select",
          { ...common, multiple: true, size: Math.min(4, Math.max(2, artifacts.length)) },
          artifacts.map((a) => h("option", { value: a.id, selected: chosen.has(a.id) }, a.label)),
        );
        read = () => {
          const v = [...input.selectedOptions].map((o) => o.value);
          return v.length ? v : undefined;
        };
        break;
      }
      case "list":
        input = h("input", { ...common, type: "text", value: Array.isArray(initial) ? initial.join(", ") : "", placeholder: "comma separated" });
        read = () => {
          const parts = input.value.split(",").map((p) => p.trim()).filter(Boolean);
          if (!parts.length) return undefined;
          if (f.itemType === "integer" || f.itemType === "number") {
            return parts.map((p) => {
              const v = Number(p);
              if (!Number.isFinite(v)) throw new Error(`${f.title}: ${p} is not a number`);
              return v;
            });
          }
          return parts;
        };
        break;
      case "union":
        input = h("input", { ...common, type: "text", value: shown(initial) });
        read = () => {
          const raw = input.value.trim();
          if (raw === "") return f.nullable ? null : undefined;
          const asNumber = Number(raw);
          if ((f.types.includes("number") || f.types.includes("integer")) && raw !== "" && Number.isFinite(asNumber)) return asNumber;
          return raw;
        };
        break;
      case "json":
        input = h("input", { ...common, type: "text", value: shown(initial), placeholder: "JSON" });
        read = () => {
          if (input.value.trim() === "") return undefined;
          try {
            return JSON.parse(input.value);
          } catch {
            throw new Error(`${f.title} must be JSON`);
          }
        };
        break;
      default:
        input = h("input", { ...common, type: "text", value: shown(initial), maxlength: f.maxLength, placeholder: f.nullable ? "auto" : "" });
        read = () => (input.value === "" ? (f.nullable ? null : undefined) : input.value);
    }
    const label = h("label", { for: id }, f.title, isRequired ? h("span", { class: "req", "aria-hidden": "true" }, " *") : null);
    const row = h(
      "div",
      { class: `param param-${f.kind}`, dataset: { param: f.name } },
      f.kind === "boolean" ? h("div", { class: "check" }, input, label) : [label, input],
      f.description ? h("small", { id: hintId, class: "hint" }, f.description) : null,
    );
    element.append(row);
    readers.push({ f, read, isRequired });
  }
  const read = () => {
    const params = {};
    const errors = [];
    for (const { f, read: r, isRequired } of readers) {
      try {
        const v = r();
        if (v === undefined) {
          if (isRequired) errors.push(`${f.title} is required`);
          continue;
        }
        if (v === null && (f.default === null || f.default === undefined) && !isRequired) continue;
        params[f.name] = v;
      } catch (err) {
        errors.push(err.message);
      }
    }
    return { params, errors };
  };
  return { element, read, fields };
}
