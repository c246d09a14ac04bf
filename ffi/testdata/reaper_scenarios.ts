/**
 * Runs the subreaper scenarios of process_test.ts in a process of their own: reaping zombie children
 * of the test runner would take exit statuses that other test files' Deno.Command children wait for.
 */
import assert from "node:assert/strict";
import { LibcProcessSyscalls, reapOrphans, Signal, type WaitStatus } from "../process.ts";

const sys = new LibcProcessSyscalls();

function ppidOf(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

/** Starts `sh -c script` (which backgrounds one job and prints its pid) and returns the orphan's pid. */
async function orphan(script: string): Promise<number> {
  const out = await new Deno.Command("sh", { args: ["-c", script], stdout: "piped" }).output();
  assert.ok(out.success);
  return Number(new TextDecoder().decode(out.stdout).trim());
}

/** Reaps on SIGCHLD (and on a slow timer as a backstop) until `want` is collected or 5 s pass. */
function reapUntil(want: number, skip: ReadonlySet<number>, seen: WaitStatus[]): Promise<WaitStatus> {
  return new Promise((resolve, reject) => {
    const tick = () => {
      try {
        seen.push(...reapOrphans(sys, skip));
      } catch (err) {
        done();
        return reject(err);
      }
      const hit = seen.find((s) => s.pid === want);
      if (hit) {
        done();
        resolve(hit);
      }
    };
    const timer = setInterval(tick, 200);
    const deadline = setTimeout(() => {
      done();
      reject(new Error(`Orphan ${want} was not reaped within 5 s`));
    }, 5000);
    const done = () => {
      clearInterval(timer);
      clearTimeout(deadline);
      Deno.removeSignalListener("SIGCHLD", tick);
    };
    Deno.addSignalListener("SIGCHLD", tick);
    tick();
  });
}

async function reapsOrphanWithoutStealing() {
  const was = sys.isChildSubreaper();
  sys.setChildSubreaper(true);
  const skip = new Set<number>();
  let other: Deno.ChildProcess | undefined;
  try {
    assert.equal(sys.isChildSubreaper(), true);
    // A child Deno waits for itself, exiting while the reaper is still waiting for the orphan.
    other = new Deno.Command("sh", { args: ["-c", "sleep 0.2; exit 3"] }).spawn();
    skip.add(other.pid);

    // runc's pattern: the parent exits at once, its background child lives on and is reparented to us.
    const pid = await orphan("(sleep 0.6; exit 7) >/dev/null 2>&1 & echo $!");
    assert.equal(ppidOf(pid), sys.getpid());

    const seen: WaitStatus[] = [];
    const st = await reapUntil(pid, skip, seen);
    assert.deepEqual(st, { pid, exitCode: 7, status: 7 });

    const status = await other.status;
    skip.delete(other.pid);
    assert.equal(status.code, 3);
    assert.ok(!seen.some((s) => s.pid === other!.pid), "the reaper took Deno.Command's child");
  } finally {
    try {
      other?.kill("SIGKILL");
    } catch {
      // already exited
    }
    await other?.status.catch(() => {});
    sys.setChildSubreaper(was);
  }
}

async function killEndsOrphan() {
  const was = sys.isChildSubreaper();
  sys.setChildSubreaper(true);
  let pid = 0;
  try {
    pid = await orphan("sleep 30 >/dev/null 2>&1 & echo $!");
    assert.equal(sys.waitpidNoHang(pid), null);
    const fd = sys.pidfdOpen(pid);
    try {
      sys.pidfdSendSignal(fd, Signal.SIGKILL);
    } finally {
      sys.close(fd);
    }
    const st = await reapUntil(pid, new Set(), []);
    assert.deepEqual(st, { pid, signal: 9, status: 137 });
    pid = 0;
  } finally {
    if (pid) {
      try {
        sys.kill(pid, Signal.SIGKILL);
      } catch {
        // gone
      }
      await reapUntil(pid, new Set(), []).catch(() => {});
    }
    sys.setChildSubreaper(was);
  }
}

for (
  const [name, fn] of [["reaps-orphan", reapsOrphanWithoutStealing], ["kill-orphan", killEndsOrphan]] as const
) {
  await fn();
  console.log(`ok ${name}`);
}
