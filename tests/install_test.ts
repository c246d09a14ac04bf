/**
 * install.sh, run for real with --root-dir into a temp dir (so no systemctl and no /usr/local is touched),
 * with a dummy executable standing in for a release binary.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";

const SCRIPT = new URL("../install.sh", import.meta.url).pathname;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function install(args: string[]): Promise<Run> {
  const out = await new Deno.Command("sh", {
    args: [SCRIPT, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    // An inherited DESTDIR would redirect the install somewhere the test does not look.
    env: { DESTDIR: "" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

function ok(r: Run): void {
  assert.equal(r.code, 0, `install.sh failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** A temp root holding a dummy "release binary" and its sha256. */
async function withFixture(fn: (root: string, bin: string, sha: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "berth-install-test-" });
  try {
    const bin = `${dir}/berth-release`;
    const body = '#!/bin/sh\necho "dummy berth $*"\n';
    await Deno.writeTextFile(bin, body);
    await Deno.chmod(bin, 0o755);
    const sha = createHash("sha256").update(body).digest("hex");
    await Deno.mkdir(`${dir}/root`);
    await fn(`${dir}/root`, bin, sha);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The [Service] keys of containerd 1.6's containerd.service that Berth's unit carries too. */
const containerdUnitKeys = [
  "Type=notify",
  "ExecStartPre=-/sbin/modprobe overlay",
  "Delegate=yes",
  "KillMode=process",
  "Restart=always",
  "RestartSec=5",
  "LimitNOFILE=infinity",
  "LimitNPROC=infinity",
  "LimitCORE=infinity",
  "TasksMax=infinity",
  "OOMScoreAdjust=-999",
];

async function assertInstalled(root: string, bin: string, prefix = "/usr/local"): Promise<void> {
  const installed = `${root}${prefix}/bin/berth`;
  assert.equal(await Deno.readTextFile(installed), await Deno.readTextFile(bin));
  assert.equal((await Deno.stat(installed)).mode! & 0o777, 0o755);
  assert.equal(await Deno.readLink(`${root}${prefix}/bin/berthd`), "berth");
  const viaLink = await new Deno.Command(`${root}${prefix}/bin/berthd`, { args: ["x"], stdout: "piped" })
    .output();
  assert.equal(new TextDecoder().decode(viaLink.stdout), "dummy berth x\n");

  const unit = await Deno.readTextFile(`${root}/etc/systemd/system/berth.service`);
  assert.match(unit, new RegExp(`^ExecStart=${prefix}/bin/berth daemon$`, "m"));
  for (const line of containerdUnitKeys) {
    assert.match(unit, new RegExp(`^${line}$`, "m"), `${line} in:\n${unit}`);
  }
  assert.match(unit, /^WantedBy=multi-user.target$/m);

  const config = await Deno.readTextFile(`${root}/etc/berth/config.toml`);
  assert.match(config, /^version = 2$/m);
  assert.match(config, /^\s*address = "\/run\/berth\/berth.sock"$/m);
}

Deno.test("install.sh --file installs binary, berthd link, unit and config; twice is fine; --uninstall removes them", async () => {
  await withFixture(async (root, bin, sha) => {
    ok(await install(["--file", bin, "--sha256", sha, "--root-dir", root]));
    await assertInstalled(root, bin);

    const second = await install(["--file", bin, "--sha256", sha.toUpperCase(), "--root-dir", root]);
    ok(second);
    assert.match(second.stdout, /kept existing \/etc\/berth\/config.toml/);
    await assertInstalled(root, bin);
    // No temp or half-written files are left beside what was installed.
    const binDir = [...Deno.readDirSync(`${root}/usr/local/bin`)].map((e) => e.name).sort();
    assert.deepEqual(binDir, ["berth", "berthd"]);

    await Deno.mkdir(`${root}/var/lib/berth`, { recursive: true });
    await Deno.writeTextFile(`${root}/var/lib/berth/meta.db`, "state");
    const un = await install(["--uninstall", "--root-dir", root]);
    ok(un);
    for (const p of ["/usr/local/bin/berth", "/usr/local/bin/berthd", "/etc/systemd/system/berth.service"]) {
      assert.equal(await exists(`${root}${p}`), false, `${p} must be removed`);
    }
    assert.equal(await exists(`${root}/etc/berth`), false, "the untouched default config and its dir go too");
    assert.equal(
      await Deno.readTextFile(`${root}/var/lib/berth/meta.db`),
      "state",
      "state stays without --purge",
    );

    ok(await install(["--uninstall", "--root-dir", root]));
    ok(await install(["--uninstall", "--purge", "--root-dir", root]));
    assert.equal(await exists(`${root}/var/lib/berth`), false, "--purge removes /var/lib/berth");
  });
});

Deno.test("install.sh is executable in git and on disk, so `curl … | sh` and ./install.sh both work", async () => {
  const out = await new Deno.Command("git", {
    args: ["ls-files", "-s", "install.sh"],
    cwd: new URL("..", import.meta.url).pathname,
    stdout: "piped",
  }).output();
  const staged = new TextDecoder().decode(out.stdout);
  // Outside a checkout (a release tarball) there is no index to ask.
  if (out.success && staged !== "") assert.match(staged, /^100755 /, staged);
  assert.equal((await Deno.stat(SCRIPT)).mode! & 0o111, 0o111);
});

Deno.test("install.sh keeps an edited config on reinstall and on --uninstall", async () => {
  await withFixture(async (root, bin) => {
    ok(await install(["--file", bin, "--root-dir", root]));
    const conf = `${root}/etc/berth/config.toml`;
    await Deno.writeTextFile(conf, 'version = 2\nroot = "/srv/berth"\n');
    ok(await install(["--file", bin, "--root-dir", root]));
    assert.equal(await Deno.readTextFile(conf), 'version = 2\nroot = "/srv/berth"\n');
    const un = await install(["--uninstall", "--root-dir", root]);
    ok(un);
    assert.match(un.stdout, /kept \/etc\/berth\/config.toml: it was edited/);
    assert.equal(await exists(conf), true);
  });
});

Deno.test("install.sh --prefix puts the binary and the unit's ExecStart under the prefix", async () => {
  await withFixture(async (root, bin, sha) => {
    ok(await install(["--file", bin, "--sha256", sha, "--root-dir", root, "--prefix", "/opt/berth"]));
    await assertInstalled(root, bin, "/opt/berth");
    assert.equal(await exists(`${root}/usr/local/bin/berth`), false);
  });
});

Deno.test("install.sh --file with a wrong sha256 fails naming both digests and installs nothing", async () => {
  await withFixture(async (root, bin, sha) => {
    const wrong = "0".repeat(64);
    const r = await install(["--file", bin, "--sha256", wrong, "--root-dir", root]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`sha256 mismatch for .*berth-release: expected ${wrong}, got ${sha}`));
    assert.equal(await exists(`${root}/usr/local/bin/berth`), false);
    assert.equal(await exists(`${root}/etc/systemd/system/berth.service`), false);
  });
});

Deno.test("install.sh --url downloads with curl and verifies the digest", async () => {
  await withFixture(async (root, bin, sha) => {
    // file:// keeps the test off the network while still going through curl.
    ok(await install(["--url", `file://${bin}`, "--sha256", sha, "--root-dir", root]));
    await assertInstalled(root, bin);
    const bad = await install([
      "--url",
      `file://${bin}`,
      "--sha256",
      "f".repeat(64),
      "--root-dir",
      `${root}2`,
    ]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, new RegExp(`expected ${"f".repeat(64)}, got ${sha}`));
    await Deno.remove(`${root}2`, { recursive: true }).catch(() => {});
  });
});

Deno.test("install.sh rejects --url without --sha256, malformed digests and unknown options", async () => {
  await withFixture(async (root, bin) => {
    const noSha = await install(["--url", `file://${bin}`, "--root-dir", root]);
    assert.notEqual(noSha.code, 0);
    assert.match(noSha.stderr, /without --sha256/);
    const short = await install(["--file", bin, "--sha256", "abc", "--root-dir", root]);
    assert.notEqual(short.code, 0);
    assert.match(short.stderr, /64 hex digits/);
    const unknown = await install(["--frobnicate"]);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /Unknown option --frobnicate/);
    const both = await install(["--file", bin, "--from-source", "--root-dir", root]);
    assert.notEqual(both.code, 0);
    assert.match(both.stderr, /Cannot combine/);
    assert.equal(await exists(`${root}/usr/local/bin/berth`), false);
  });
});

Deno.test("install.sh --from-source installs a deno wrapper when no binary can be compiled; berthd runs the daemon", async () => {
  await withFixture(async (root) => {
    // A checkout with no compile task: `deno task compile` fails the same way a missing denort does.
    const checkout = `${root}/../checkout`;
    await Deno.mkdir(checkout);
    await Deno.writeTextFile(`${checkout}/main.ts`, 'console.log(["fake", ...Deno.args].join(" "));\n');
    await Deno.writeTextFile(`${checkout}/deno.json`, '{ "tasks": {} }\n');
    const out = await new Deno.Command("sh", {
      args: [SCRIPT, "--from-source", "--checkout", checkout, "--root-dir", root],
      stdout: "piped",
      stderr: "piped",
      env: { DESTDIR: "", PATH: `${Deno.execPath().replace(/\/[^/]*$/, "")}:${Deno.env.get("PATH") ?? ""}` },
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, `${stdout}\n${new TextDecoder().decode(out.stderr)}`);
    assert.match(stdout, /installing a wrapper/);
    const run = async (name: string) =>
      new TextDecoder().decode(
        (await new Deno.Command(`${root}/usr/local/bin/${name}`, { args: ["x"], stdout: "piped" }).output())
          .stdout,
      );
    assert.equal(await run("berth"), "fake x\n");
    assert.equal(await run("berthd"), "fake daemon x\n");
  });
});

const hasShellcheck = await new Deno.Command("sh", { args: ["-c", "command -v shellcheck"], stdout: "null" })
  .output().then((o) => o.success);

Deno.test({
  name: "install.sh is POSIX sh that shellcheck accepts",
  ignore: !hasShellcheck,
  async fn() {
    const out = await new Deno.Command("shellcheck", { args: ["--shell=sh", SCRIPT], stdout: "piped" })
      .output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stdout));
  },
});
