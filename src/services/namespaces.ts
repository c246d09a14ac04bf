import {
  NamespaceCreateSchema,
  NamespaceDeleteSchema,
  NamespaceUpdateSchema,
} from "../gen/events/namespace_pb.ts";
import { Namespaces } from "../gen/services/namespaces/v1/namespace_pb.ts";
import type { NamespaceStore } from "../core/namespaces/mod.ts";
import type { GrpcService, PluginDef } from "../plugins/registry.ts";
import { grpcPluginType, metadataNamespacesPluginId, metadataPluginType } from "../plugins/ids.ts";
import { parseFilters } from "../core/filters/mod.ts";
import { invalidArgument } from "../base/errors.ts";

export const namespacesServicePlugin: PluginDef<GrpcService> = {
  type: grpcPluginType,
  id: "namespaces",
  requires: [metadataPluginType],
  init(ic) {
    const store = ic.get<NamespaceStore>(metadataPluginType, metadataNamespacesPluginId);
    return {
      register: (router) =>
        router.service(Namespaces, {
          get: (req) => ({ namespace: store.get(req.name) }),
          list: (req) => {
            const filter = parseFilters(req.filter ? [req.filter] : []);
            const namespaces = store.list().filter((ns) =>
              filter.match((path) => {
                if (path[0] === "name" && path.length === 1) return ns.name;
                if (path[0] === "labels" && path.length === 2) return ns.labels[path[1]!];
                return undefined;
              })
            );
            return { namespaces };
          },
          create: (req) => {
            if (!req.namespace) throw invalidArgument("Cannot create a namespace: the request names none");
            const ns = store.create({ name: req.namespace.name, labels: req.namespace.labels });
            ic.events.publish(ns.name, "/namespaces/create", NamespaceCreateSchema, ns);
            return { namespace: ns };
          },
          update: (req) => {
            if (!req.namespace) throw invalidArgument("Cannot update a namespace: the request names none");
            const ns = store.update(
              { name: req.namespace.name, labels: req.namespace.labels },
              req.updateMask?.paths ?? [],
            );
            ic.events.publish(ns.name, "/namespaces/update", NamespaceUpdateSchema, ns);
            return { namespace: ns };
          },
          delete: (req) => {
            store.delete(req.name);
            ic.events.publish(req.name, "/namespaces/delete", NamespaceDeleteSchema, { name: req.name });
            return {};
          },
        }),
    };
  },
};
