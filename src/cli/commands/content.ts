import type { Command } from "commander";
import { withClient } from "../context.ts";
import { formatBytes } from "../progress.ts";
import { formatLabels, parseLabelArgs, printTable } from "../table.ts";
import { pullAction, type PullFlags, pullOptions } from "./pull.ts";

export function contentCommand(program: Command): void {
  const content = program.command("content").description("Manage content");

  content.command("ls").alias("list").description("List all blobs in the store")
    .option("-q, --quiet", "print only the blob digest").argument("[filters...]")
    .action(async (filters: string[], opts: { quiet?: boolean }, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const rows: string[][] = [["DIGEST", "SIZE", "AGE", "LABELS"]];
        for await (const res of client.content.list({ filters })) {
          for (const info of res.info) {
            if (opts.quiet) {
              console.log(info.digest);
              continue;
            }
            const created = info.createdAt ? Number(info.createdAt.seconds) * 1000 : Date.now();
            const labels = formatLabels(info.labels);
            rows.push([info.digest, formatBytes(Number(info.size)), age(created), labels || "-"]);
          }
        }
        if (!opts.quiet) printTable(rows, 1);
      });
    });

  content.command("active").description("Display active transfers (ingests not yet committed)")
    .argument("[filter]", "a filter on the ref, e.g. ref~=^layer-")
    .action(async (filter: string | undefined, _o, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const { statuses } = await client.content.listStatuses({ filters: filter ? [filter] : [] });
        const rows: string[][] = [["REF", "SIZE", "AGE"]];
        for (const st of statuses) {
          const started = st.startedAt ? Number(st.startedAt.seconds) * 1000 : Date.now();
          rows.push([st.ref, formatBytes(Number(st.offset)), age(started)]);
        }
        printTable(rows, 1);
      });
    });

  content.command("get").description("Get the data for an object").argument("<digest>")
    .action(async (digest: string, _o, cmd: Command) => {
      await withClient(cmd, async (client) => {
        for await (const res of client.content.read({ digest })) {
          for (let off = 0; off < res.data.byteLength;) {
            off += await Deno.stdout.write(res.data.subarray(off));
          }
        }
      });
    });

  const fetch = content.command("fetch").description(
    "Fetch all content for an image into containerd (in the daemon; creates the image record, no unpack)",
  ).argument("<ref>");
  pullOptions(fetch).action(async (ref: string, opts: PullFlags, cmd: Command) => {
    await pullAction(cmd, ref, { ...opts, unpack: false });
  });

  content.command("rm").alias("delete").description("Permanently delete one or more blobs")
    .argument("<digests...>")
    .action(async (digests: string[], _o, cmd: Command) => {
      await withClient(cmd, async (client) => {
        let failed = 0;
        for (const digest of digests) {
          try {
            await client.content.delete({ digest });
            console.log(digest);
          } catch (err) {
            failed++;
            console.error(`berth: Cannot delete content ${digest}: ${(err as Error).message}`);
          }
        }
        if (failed) throw new Error(`${failed} of ${digests.length} blobs were not deleted`);
      });
    });

  content.command("label").description("Add labels to content (KEY= removes a label)")
    .argument("<digest>").argument("[labels...]", "KEY=VALUE labels")
    .action(async (digest: string, labels: string[], _o, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const parsed = parseLabelArgs(labels);
        const paths = Object.keys(parsed).map((k) => `labels.${k}`);
        const { info } = await client.content.update({
          info: { digest, labels: parsed },
          updateMask: { paths },
        });
        console.log(`updated ${digest}: ${formatLabels(info?.labels ?? {}) || "-"}`);
      });
    });
}

/** Go's units.HumanDuration as ctr prints ages: "3 minutes", "About an hour". */
function age(ms: number): string {
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 1) return "Less than a second";
  if (s < 60) return `${Math.floor(s)} seconds`;
  if (s < 3600) return `${Math.max(1, Math.floor(s / 60))} minutes`;
  if (s < 48 * 3600) return `${Math.round(s / 3600)} hours`;
  return `${Math.round(s / 86400)} days`;
}
