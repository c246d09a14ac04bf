/**
 * A container's spec from its CRI config: the image's config under the request's command, args, env and
 * working dir, the pod's namespaces joined, its hostname, hosts, resolv.conf and /dev/shm bound in, the
 * CRI mounts, cgroup under the pod's parent, and the CRI annotations. The full security context of
 * containerd's containerSpec (capabilities, seccomp, devices, resources) is not applied here.
 */
import {
  generateSpec,
  type SpecOpt,
  withAnnotations,
  withArgs,
  withCgroup,
  withEnv,
  withImageConfig,
  withLinuxNamespace,
  withMounts,
  withProcessCwd,
  withReadonlyRootfs,
  withTTY,
} from "../../oci/opts.ts";
import type { Mount, Spec } from "../../oci/spec.ts";
import { MountPropagation, NamespaceMode } from "../../gen/k8s/cri/runtime/v1/api_pb.ts";
import type { ContainerSpecInput } from "./containers.ts";
import { Annotations, cgroupsPath, passthroughAnnotations } from "./sandbox_spec.ts";

export async function basicContainerSpec(i: ContainerSpecInput): Promise<Spec> {
  const c = i.config;
  const sb = i.sandbox;
  const pid = sb.pid;
  const ns = c.linux?.securityContext?.namespaceOptions;
  const opts: SpecOpt[] = [
    withImageConfig(i.image.config, c.args.length > 0 && c.command.length === 0 ? c.args : undefined),
  ];
  if (c.command.length > 0) opts.push(withArgs(...c.command, ...c.args));
  if (c.workingDir) opts.push(withProcessCwd(c.workingDir));
  if (c.envs.length > 0) opts.push(withEnv(c.envs.map((e) => `${e.key}=${e.value}`)));
  if (c.tty) opts.push(withTTY);
  if (c.linux?.securityContext?.readonlyRootfs) opts.push(withReadonlyRootfs);
  const mounts: Mount[] = [
    {
      source: i.files.hostname,
      destination: "/etc/hostname",
      type: "bind",
      options: ["rbind", "rprivate", "rw"],
    },
    { source: i.files.hosts, destination: "/etc/hosts", type: "bind", options: ["rbind", "rprivate", "rw"] },
    {
      source: i.files.resolvConf,
      destination: "/etc/resolv.conf",
      type: "bind",
      options: ["rbind", "rprivate", "rw"],
    },
    { source: i.files.devShm, destination: "/dev/shm", type: "bind", options: ["rbind", "rprivate", "rw"] },
  ];
  for (const m of c.mounts) {
    const propagation = m.propagation === MountPropagation.PROPAGATION_BIDIRECTIONAL
      ? "rshared"
      : m.propagation === MountPropagation.PROPAGATION_HOST_TO_CONTAINER
      ? "rslave"
      : "rprivate";
    mounts.push({
      source: m.hostPath,
      destination: m.containerPath,
      type: "bind",
      options: ["rbind", propagation, m.readonly ? "ro" : "rw"],
    });
  }
  opts.push(withMounts(mounts));
  if (pid > 0) {
    opts.push(
      withLinuxNamespace({ type: "network", path: `/proc/${pid}/ns/net` }),
      withLinuxNamespace({ type: "ipc", path: `/proc/${pid}/ns/ipc` }),
      withLinuxNamespace({ type: "uts", path: `/proc/${pid}/ns/uts` }),
    );
    if (ns?.pid === NamespaceMode.POD) {
      opts.push(withLinuxNamespace({ type: "pid", path: `/proc/${pid}/ns/pid` }));
    }
  }
  const parent = sb.config.linux?.cgroupParent;
  if (parent) opts.push(withCgroup(cgroupsPath(parent, i.id)));
  opts.push(withAnnotations({
    ...passthroughAnnotations(c.annotations, i.runtime.containerAnnotations),
    [Annotations.containerType]: Annotations.containerTypeContainer,
    [Annotations.sandboxId]: sb.id,
    [Annotations.sandboxNamespace]: sb.config.metadata?.namespace ?? "",
    [Annotations.sandboxUid]: sb.config.metadata?.uid ?? "",
    [Annotations.sandboxName]: sb.config.metadata?.name ?? "",
    [Annotations.containerName]: c.metadata?.name ?? "",
    [Annotations.imageName]: i.image.name,
  }));
  return await generateSpec({ namespace: "k8s.io", id: i.id }, opts);
}
