/**
 * Every plugin type and built-in plugin id in one place, as containerd keeps them (plugin/plugin.go):
 * `ctr plugins ls`, config sections (`[plugins."<type>.<id>"]`) and `disabled_plugins` use these names.
 */

// Types.
export const contentPluginType = "io.containerd.content.v1";
export const differPluginType = "io.containerd.differ.v1";
export const eventsPluginType = "io.containerd.event.v1";
export const gcPluginType = "io.containerd.gc.v1";
export const grpcPluginType = "io.containerd.grpc.v1";
export const leasePluginType = "io.containerd.lease.v1";
export const metadataPluginType = "io.containerd.metadata.v1";
export const runtimePluginType = "io.containerd.runtime.v2";
export const servicePluginType = "io.containerd.service.v1";
export const snapshotterPluginType = "io.containerd.snapshotter.v1";
export const transferPluginType = "io.containerd.transfer.v1";

// The local stores the gRPC services wrap (containerd's io.containerd.service.v1 plugins).
export const containerStorePluginType = servicePluginType;
export const containerStorePluginId = "containers-service";
export const imageStorePluginType = servicePluginType;
export const imageStorePluginId = "images-service";

/** The runtime v2 task manager. */
export const runtimePluginId = "task";
/** The namespace store, a metadata plugin beside containerd's bolt database. */
export const metadataNamespacesPluginId = "namespaces";
/** Kubernetes' CRI, a gRPC plugin as containerd's io.containerd.grpc.v1.cri. */
export const criPluginId = "cri";
