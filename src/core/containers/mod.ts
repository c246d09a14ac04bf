export {
  adaptContainer,
  type AnyValue,
  type Container,
  type ContainerInit,
  ContainerStore,
  type RuntimeInfo,
  specTypeUrl,
} from "./store.ts";
