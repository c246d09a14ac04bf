/**
 * Containers by name or id, as Docker users give them: an exact name (label `nerdctl/name`), an exact
 * id, or a unique prefix of an id. Names are unique per namespace.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { BerthClient } from "../client/mod.ts";
import type { Container } from "../gen/services/containers/v1/containers_pb.ts";
import { alreadyExists, invalidArgument, notFound } from "../base/errors.ts";
import { LABELS } from "./labels.ts";

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Throws unless `name` is usable as a container name (Docker's rule). */
export function checkName(name: string): void {
  if (!NAME.test(name) || name.length > 128) {
    throw invalidArgument(`Invalid container name "${name}": use [a-zA-Z0-9][a-zA-Z0-9_.-]*`);
  }
}

/** The container's Docker name: its label, else its id (containers made by ctr have none). */
export function nameOf(container: Pick<Container, "id" | "labels">): string {
  return container.labels[LABELS.name] || container.id;
}

/** Every container of the client's namespace. */
export async function listContainers(client: BerthClient, filters: string[] = []): Promise<Container[]> {
  return (await client.containers.list({ filters })).containers;
}

/** The one container `ref` names; a clear NotFound or ambiguity error otherwise. */
export async function resolveContainer(client: BerthClient, ref: string): Promise<Container> {
  if (ref === "") throw invalidArgument("No container given");
  try {
    const { container } = await client.containers.get({ id: ref });
    if (container) return container;
  } catch (err) {
    if (!(err instanceof ConnectError && (err.code === Code.NotFound || err.code === Code.InvalidArgument))) {
      throw err;
    }
  }
  const all = await listContainers(client);
  const named = all.filter((c) => c.labels[LABELS.name] === ref);
  if (named.length === 1) return named[0]!;
  const prefixed = all.filter((c) => c.id.startsWith(ref));
  if (prefixed.length === 1) return prefixed[0]!;
  if (prefixed.length > 1) {
    throw invalidArgument(
      `"${ref}" matches ${prefixed.length} containers (${
        prefixed.map((c) => c.id.slice(0, 12)).join(", ")
      }): ` +
        "give more of the id, or the name",
    );
  }
  throw notFound(`No such container: ${ref} (see \`berth ps -a\`)`);
}

/** Throws AlreadyExists when another container of the namespace has the name `name`. */
export async function checkNameFree(client: BerthClient, name: string, exceptId = ""): Promise<void> {
  const all = await listContainers(client, [`labels."${LABELS.name}"==${name}`]);
  const other = all.find((c) => c.id !== exceptId && c.labels[LABELS.name] === name);
  if (other) {
    throw alreadyExists(
      `The container name "${name}" is already in use by container ${other.id.slice(0, 12)}: ` +
        "remove that container (berth rm) or choose another name",
    );
  }
}

/** A 64-hex container id, as Docker makes them. */
export function newContainerId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** nerdctl's default name: the image's last path part without tag, and 5 hex of the id. */
export function defaultName(image: string, id: string): string {
  const base = image.replace(/[@].*$/, "").replace(/:[^/:]*$/, "").split("/").pop() || "container";
  return `${base.replace(/[^a-zA-Z0-9_.-]/g, "-")}-${id.slice(0, 5)}`;
}
