/** `berth shim …`: the task shim. The ttrpc task service lands with the containers-and-tasks work. */
export function shimMain(_args: string[]): Promise<number> {
  console.error("berth shim: the task shim is not built yet; see the README's status table");
  return Promise.resolve(1);
}
