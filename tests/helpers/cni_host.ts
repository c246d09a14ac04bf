/**
 * Host state that CNI tests change and must put back: iptables rules and chains, the ip_forward sysctl
 * (the bridge plugin turns it on), bridges and veths.
 */
import { outputClean } from "../../src/base/spawn.ts";

async function run(program: string, args: string[], stdin?: string): Promise<string> {
  const child = new Deno.Command(program, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  })
    .spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  if (!out.success) {
    throw new Error(`${program} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** The ruleset as `iptables-save` (or `ip6tables-save`) prints it. */
export const iptablesSave = (save = "iptables-save") => run(save, []);

interface Table {
  chains: string[];
  rules: string[];
}

/** iptables-save text by table: chain names and "-A …" rule lines. */
export function parseSave(text: string): Map<string, Table> {
  const tables = new Map<string, Table>();
  let current: Table | undefined;
  for (const line of text.split("\n")) {
    if (line.startsWith("*")) {
      current = { chains: [], rules: [] };
      tables.set(line.slice(1), current);
    } else if (line.startsWith(":") && current) current.chains.push(line.slice(1).split(" ")[0]!);
    else if (line.startsWith("-A ") && current) current.rules.push(line);
  }
  return tables;
}

/** The rule lines of the current ruleset that match `pattern`. */
export async function rulesMatching(pattern: RegExp, save = "iptables-save"): Promise<string[]> {
  return [...parseSave(await iptablesSave(save)).values()].flatMap((t) => t.rules).filter((r) =>
    pattern.test(r)
  );
}

const SHARED_CHAINS = /^CNI-(FORWARD|ADMIN|ISOLATION-STAGE-\d|HOSTPORT-(DNAT|SNAT|MASQ|SETMARK))$/;

/**
 * Puts iptables back as `before` had it, as far as the test is concerned: deletes the rules that match
 * `ours` and were not there before, then the CNI-* chains the test's plugins created (and the jumps to
 * them), unless some other container's CNI rules (a comment with `id: "…"`) still use them. Empty tables
 * stay: iptables-nft cannot delete a table, and an empty one changes no packet.
 */
export async function restoreIptables(
  before: string,
  ours: RegExp,
  family: "iptables" | "ip6tables" = "iptables",
): Promise<void> {
  // Tests run in parallel: another one's plugins may change the ruleset between our save and our restore
  // (a rule we meant to delete is gone already). Read it again and retry then.
  for (let attempt = 1;; attempt++) {
    try {
      return await restoreOnce(before, ours, family);
    } catch (err) {
      if (attempt >= 3 || !/No chain\/target\/match|Bad rule|does a matching rule exist/.test(String(err))) {
        throw err;
      }
      await new Promise((r) => setTimeout(r, 100 * attempt));
    }
  }
}

async function restoreOnce(before: string, ours: RegExp, family: "iptables" | "ip6tables"): Promise<void> {
  const old = parseSave(before);
  const now = parseSave(await iptablesSave(`${family}-save`));
  for (const [name, table] of now) {
    const was = old.get(name) ?? { chains: [], rules: [] };
    const mine = table.rules.filter((r) => ours.test(r) && !was.rules.includes(r));
    const left = table.rules.filter((r) => !mine.includes(r));
    // The chains every CNI container shares (firewall's and portmap's top-level ones) stay: another
    // test's plugins may be about to jump to them.
    const newChains = table.chains.filter((c) =>
      c.startsWith("CNI-") && !was.chains.includes(c) && !SHARED_CHAINS.test(c)
    );
    const others = left.some((r) => /id: \\"/.test(r));
    const drop = others ? [] : newChains;
    const jumps = left.filter((r) => {
      const [, chain] = r.split(" ");
      return !drop.includes(chain!) && drop.some((c) => r.endsWith(` -j ${c}`) || r.includes(` -j ${c} `));
    });
    const script = [
      `*${name}`,
      ...mine.filter((r) => !drop.includes(r.split(" ")[1]!)).map((r) => `-D${r.slice(2)}`),
      ...jumps.map((r) => `-D${r.slice(2)}`),
      ...drop.map((c) => `-F ${c}`),
      ...drop.map((c) => `-X ${c}`),
      "COMMIT",
      "",
    ];
    if (script.length > 3) await run(`${family}-restore`, ["--noflush"], script.join("\n"));
  }
}

/** Whether CNI rules (comments naming a container id) of someone other than `ours` are in place. */
export async function otherCniRules(ours: RegExp): Promise<boolean> {
  return (await rulesMatching(/id: \\"/)).some((r) => !ours.test(r));
}

export const readIpForward = () => Deno.readTextFile("/proc/sys/net/ipv4/ip_forward").then((s) => s.trim());
export const writeIpForward = (v: string) => Deno.writeTextFile("/proc/sys/net/ipv4/ip_forward", `${v}\n`);

/** Names of the links enslaved to `bridge` (its veths); none when the bridge does not exist. */
export async function bridgePorts(bridge: string): Promise<string[]> {
  const out = await outputClean("ip", { args: ["-o", "link", "show", "master", bridge] });
  if (!out.success) return [];
  return new TextDecoder().decode(out.stdout).split("\n").filter((l) => l.trim() !== "").map((l) =>
    l.split(":")[1]!.trim().split("@")[0]!
  );
}

export async function linkExists(name: string): Promise<boolean> {
  return (await outputClean("ip", { args: ["link", "show", name] })).success;
}

export async function deleteLink(name: string): Promise<void> {
  if (await linkExists(name)) await run("ip", ["link", "del", name]);
}
