/**
 * Fake CNI plugins for unit tests: small shell scripts that record every call (CNI_* environment and
 * stdin) and answer each command with a fixed output and exit status.
 */

export interface FakeAnswer {
  /** Printed on stdout. */
  readonly stdout?: string;
  readonly stderr?: string;
  readonly exit?: number;
  /** Seconds to sleep instead of answering (deadline tests); the plugin process itself sleeps. */
  readonly sleep?: number;
  /** Bytes of "x" to print (output cap tests). */
  readonly flood?: number;
}

export interface FakeSpec {
  readonly ADD?: FakeAnswer;
  readonly DEL?: FakeAnswer;
  readonly CHECK?: FakeAnswer;
  readonly VERSION?: FakeAnswer;
}

export interface RecordedCall {
  readonly plugin: string;
  readonly env: Record<string, string>;
  readonly stdin: Record<string, unknown>;
}

const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

function answer(a: FakeAnswer | undefined): string {
  if (!a) return "exit 0";
  const lines: string[] = [];
  if (a.sleep) return `exec sleep ${a.sleep}`;
  if (a.stdout !== undefined) lines.push(`printf '%s' ${quote(a.stdout)}`);
  if (a.flood) lines.push(`head -c ${a.flood} /dev/zero | tr '\\0' x`);
  if (a.stderr !== undefined) lines.push(`printf '%s' ${quote(a.stderr)} >&2`);
  lines.push(`exit ${a.exit ?? 0}`);
  return lines.join("\n    ");
}

/** A folder of fake plugins and the log of their calls. */
export class FakePlugins {
  readonly binDir: string;
  readonly #logDir: string;

  private constructor(readonly root: string) {
    this.binDir = `${root}/bin`;
    this.#logDir = `${root}/calls`;
  }

  static async create(): Promise<FakePlugins> {
    const f = new FakePlugins(await Deno.makeTempDir({ prefix: "berth-cni-fake-" }));
    await Deno.mkdir(f.binDir);
    await Deno.mkdir(f.#logDir);
    return f;
  }

  /** Installs the fake `type`; a command without an answer exits 0 silently. */
  async add(type: string, spec: FakeSpec): Promise<void> {
    const script = `#!/bin/sh
# Fake CNI plugin ${type}: records the call, then answers by command.
log=${quote(this.#logDir)}
req=$(cat)
n=$(ls "$log" | wc -l)
n=$(printf '%06d' "$n")
{
  echo "PLUGIN=${type}"
  env | grep '^CNI_' | sort
  echo "---"
  printf '%s' "$req"
} > "$log/$n.tmp" && mv "$log/$n.tmp" "$log/$n.call"
case "$CNI_COMMAND" in
  ADD)
    ${answer(spec.ADD)};;
  DEL)
    ${answer(spec.DEL)};;
  CHECK)
    ${answer(spec.CHECK)};;
  VERSION)
    ${
      answer(
        spec.VERSION ??
          { stdout: '{"cniVersion":"1.0.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0"]}' },
      )
    };;
esac
`;
    const path = `${this.binDir}/${type}`;
    await Deno.writeTextFile(path, script, { mode: 0o755 });
    await Deno.chmod(path, 0o755);
  }

  /** Every call so far, in order. */
  async calls(): Promise<RecordedCall[]> {
    const names: string[] = [];
    for await (const e of Deno.readDir(this.#logDir)) if (e.name.endsWith(".call")) names.push(e.name);
    names.sort();
    const out: RecordedCall[] = [];
    for (const name of names) {
      const text = await Deno.readTextFile(`${this.#logDir}/${name}`);
      const sep = text.indexOf("\n---\n");
      const env: Record<string, string> = {};
      for (const line of text.slice(0, sep).split("\n")) {
        const eq = line.indexOf("=");
        if (eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1);
      }
      const body = text.slice(sep + 5);
      out.push({ plugin: env.PLUGIN!, env, stdin: body.trim() === "" ? {} : JSON.parse(body) });
    }
    return out;
  }

  /** "type COMMAND" for every call so far. */
  async sequence(): Promise<string[]> {
    return (await this.calls()).map((c) => `${c.plugin} ${c.env.CNI_COMMAND}`);
  }

  async clearCalls(): Promise<void> {
    for await (const e of Deno.readDir(this.#logDir)) await Deno.remove(`${this.#logDir}/${e.name}`);
  }

  async cleanup(): Promise<void> {
    await Deno.remove(this.root, { recursive: true }).catch(() => {});
  }
}

/** A 1.0.0 result with one container interface and one IPv4 address. */
export function resultJson(
  address: string,
  options: { version?: string; ifname?: string; gateway?: string } = {},
): string {
  const version = options.version ?? "1.0.0";
  const legacy = version !== "1.0.0";
  return JSON.stringify({
    cniVersion: version,
    interfaces: [{ name: options.ifname ?? "eth0", mac: "02:00:00:00:00:01", sandbox: "/run/netns/x" }],
    ips: [{
      ...(legacy ? { version: "4" } : {}),
      interface: 0,
      address,
      gateway: options.gateway ?? "10.9.0.1",
    }],
    routes: [{ dst: "0.0.0.0/0" }],
    dns: {},
  });
}
