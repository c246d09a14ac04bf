/** Tells a daemon's answer by its code. */
import { Code, ConnectError } from "@connectrpc/connect";

/** Whether err is the daemon's answer with this code. */
export const isCode = (err: unknown, code: Code): boolean => err instanceof ConnectError && err.code === code;
