/**
 * The small part of Go's text/template that scripts give `docker ps|inspect|stats --format`:
 * `{{.Field.Sub}}`, `{{json .}}`, `{{json .Field}}`, `{{index .Field "key"}}` and `{{upper|lower|title .X}}`,
 * with `\t` and `\n` unescaped as docker does. Anything else is refused with a clear error.
 */
import { invalidArgument } from "../base/errors.ts";

type Value = unknown;

/** How Go's %v prints a value inside a template. */
function goValue(v: Value): string {
  if (v === undefined) return "<no value>";
  if (v === null) return "<nil>";
  if (Array.isArray(v)) return `[${v.map(goValue).join(" ")}]`;
  if (typeof v === "object") {
    const entries = Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b));
    return `map[${entries.map(([k, x]) => `${k}:${goValue(x)}`).join(" ")}]`;
  }
  return String(v);
}

function lookup(root: Value, path: string, format: string): Value {
  if (path === ".") return root;
  if (!/^(\.[A-Za-z_][A-Za-z0-9_]*)+$/.test(path)) {
    throw invalidArgument(`Cannot use the template "${format}": "${path}" is not a field like .Name`);
  }
  let v: Value = root;
  for (const key of path.slice(1).split(".")) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

const ACTION = /\{\{-?\s*(.*?)\s*-?\}\}/g;

/** Renders `format` over `data`. */
export function renderTemplate(format: string, data: Value): string {
  const text = format.replaceAll("\\t", "\t").replaceAll("\\n", "\n");
  return text.replace(ACTION, (_m, action: string) => {
    const words = action.match(/"(?:[^"\\]|\\.)*"|\S+/g) ?? [];
    const [fn, arg, key] = words;
    if (words.length === 1) return goValue(lookup(data, fn!, format));
    if (fn === "json" && words.length === 2) return JSON.stringify(lookup(data, arg!, format) ?? null);
    if (fn === "index" && words.length === 3 && key!.startsWith('"')) {
      const obj = lookup(data, arg!, format);
      const k = JSON.parse(key!) as string;
      return goValue(obj && typeof obj === "object" ? (obj as Record<string, unknown>)[k] : undefined);
    }
    if ((fn === "upper" || fn === "lower" || fn === "title") && words.length === 2) {
      const s = goValue(lookup(data, arg!, format));
      if (fn === "upper") return s.toUpperCase();
      if (fn === "lower") return s.toLowerCase();
      return s.replace(/\b\w/g, (c) => c.toUpperCase());
    }
    throw invalidArgument(
      `Cannot use the template "${format}": "{{${action}}}" is not supported ` +
        '(use {{.Field}}, {{json .Field}} or {{index .Field "key"}})',
    );
  });
}
