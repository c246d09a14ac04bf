import type { ServiceImpl } from "@connectrpc/connect";
import { invalidArgument } from "../base/errors.ts";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ContainerFlags as FlagsOfCli } from "../client/new_container.ts";
import { type ContainerFlags, Run, type RunEvent, type RunEventSchema } from "../gen/berth/run/v1/run_pb.ts";
import type { GrpcService } from "../plugins/registry.ts";
import { namespaceOf } from "../services/context.ts";
import { rootfsUserDb } from "../core/mount/mod.ts";

/** The Run service's routes: see run_service.ts. */
export function createRunService(address: string): GrpcService {
  return { register: (router) => router.service(Run, runHandlers(address)) };
}

type Event = MessageInitShape<typeof RunEventSchema>;

function runHandlers(address: string): ServiceImpl<typeof Run> {
  return {
    async *run(req, ctx): AsyncGenerator<Event> {
      const namespace = namespaceOf(ctx);
      if (req.image === "") throw invalidArgument("Cannot run: the request names no image");
      if (req.id === "") throw invalidArgument("Cannot run: the request names no container id");
      const flags = containerFlags(req.flags);
      const [{ BerthClient }, { localImage, runContainerSteps }] = await Promise.all([
        import("../client/mod.ts"),
        import("../client/new_container.ts"),
      ]);
      const client = new BerthClient(address, { namespace });
      try {
        const image = await localImage(client, req.image, flags.snapshotter);
        if (!image) {
          yield event({
            case: "imageNotReady",
            value: `Image "${req.image}" is not unpacked for ${flags.snapshotter}`,
          });
          return;
        }
        const steps = runContainerSteps(client, image, {
          ref: req.image,
          id: req.id,
          args: req.args,
          flags,
          namespace,
          envFile: req.flags?.envFile,
          stdin: req.stdin,
          stdout: req.stdout,
          stderr: req.stderr,
          detach: req.detach,
          remove: req.remove,
          signal: ctx.signal,
          userDb: rootfsUserDb,
        });
        for await (const step of steps) {
          yield event(
            "started" in step
              ? { case: "started", value: step.started }
              : { case: "exited", value: step.exited },
          );
        }
      } finally {
        client.close();
      }
    },
  };
}

function event(e: RunEvent["event"]): Event {
  return { event: e };
}

/** The request's flags in the CLI's form (numbers stay text: they are checked as the CLI checks them). */
function containerFlags(f: ContainerFlags | undefined): FlagsOfCli {
  const text = (v: string | undefined) => v === undefined || v === "" ? undefined : v;
  return {
    env: f?.env ?? [],
    mount: f?.mount ?? [],
    label: f?.label ?? [],
    annotation: f?.annotation ?? [],
    memoryLimit: text(f?.memoryLimit),
    cpus: text(f?.cpus),
    cpuShares: text(f?.cpuShares),
    pidsLimit: text(f?.pidsLimit),
    snapshotter: f?.snapshotter || "overlayfs",
    runtime: f?.runtime || "io.containerd.runc.v2",
    netHost: f?.netHost ?? false,
    hostname: text(f?.hostname),
    user: text(f?.user),
    cwd: text(f?.cwd),
    readOnly: f?.readOnly ?? false,
    capAdd: f?.capAdd ?? [],
    capDrop: f?.capDrop ?? [],
    cgroup: f?.cgroup,
  };
}
