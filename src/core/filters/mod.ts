/**
 * containerd's filter syntax (pkg/filters), used by every List/Walk call of the API.
 *
 * A filter string is a comma-separated list of selectors, all of which must match:
 * `<fieldpath>[<operator><value>]`, e.g. `name==foo,labels."very complex label"~=^a`. Operators are
 * `==`, `!=` and `~=` (regular expression); without one, the selector tests that the field is present.
 * A list of filter strings matches when any of them does; an empty list matches everything.
 */
import { parseSelectors, type Selector } from "./parser.ts";

/**
 * Maps a fieldpath (e.g. `["labels", "foo"]`) to the object's value, or undefined when the field is
 * absent. Adaptors follow protobuf field names in lower case (`target.mediatype`).
 */
export type Adaptor = (fieldpath: readonly string[]) => string | undefined;

export interface Filter {
  match(adaptor: Adaptor): boolean;
}

/** Matches every object. */
export const always: Filter = { match: () => true };

/**
 * Parses containerd filter strings: the result matches when any string matches (OR), each string being
 * an AND of its selectors. An empty list, or an empty string in it, matches everything.
 * Throws invalidArgument naming the filter and the position of the first error.
 */
export function parseFilters(filters: readonly string[]): Filter {
  if (filters.length === 0) return always;
  const alternatives: Selector[][] = [];
  for (const f of filters) {
    if (f === "") return always;
    alternatives.push(parseSelectors(f));
  }
  return {
    match: (adaptor) => alternatives.some((selectors) => selectors.every((s) => matchSelector(s, adaptor))),
  };
}

/** Parses one filter string (an AND of selectors). */
export function parseFilter(filter: string): Filter {
  return parseFilters([filter]);
}

function matchSelector(s: Selector, adaptor: Adaptor): boolean {
  const value = adaptor(s.fieldpath);
  switch (s.operator) {
    case "present":
      return value !== undefined;
    case "==":
      return value !== undefined && value === s.value;
    case "!=":
      // As in containerd: an absent field counts as the empty string, so it is "not equal".
      return (value ?? "") !== s.value;
    case "~=":
      return s.re!.test(value ?? "");
  }
}

/**
 * Looks a label up the way containerd does: the rest of the fieldpath joined with dots is the key, so
 * `labels.a.b` and `labels."a.b"` both find the label "a.b".
 */
export function labelsAdaptor(labels: Readonly<Record<string, string>> | undefined): Adaptor {
  return (rest) => {
    if (labels === undefined || rest.length === 0) return undefined;
    const key = rest.join(".");
    return Object.hasOwn(labels, key) ? labels[key] : undefined;
  };
}

/** A field of an object adaptor: a string leaf, absent, or a nested adaptor (e.g. labels). */
export type AdaptorField = string | undefined | Adaptor;

/**
 * Builds an adaptor from the object's top-level fields. A string field matches a one-component path
 * (whatever follows it) and, as in containerd's adaptors, counts as absent when empty; a nested adaptor gets the rest of
 * the path: `objectAdaptor({ name, target: objectAdaptor({ digest }), labels: labelsAdaptor(l) })`.
 */
export function objectAdaptor(fields: Readonly<Record<string, AdaptorField>>): Adaptor {
  return (fieldpath) => {
    const [head, ...rest] = fieldpath;
    if (head === undefined || !Object.hasOwn(fields, head)) return undefined;
    const field = fields[head];
    if (typeof field === "function") return field(rest);
    if (field === undefined || field === "") return undefined;
    return field;
  };
}
