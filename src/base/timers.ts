/**
 * Deno 2.9's global timers are node:timers behind lazy getters: the first access to setTimeout or
 * clearTimeout loads Node's compatibility modules (timers, async_hooks, errors, inspect: ~4-5 ms).
 * Connect's call runner clears a deadline timer after every call even when it set none
 * (`clearTimeout(undefined)`), so each CLI command paid that load at its first finished call.
 */

/**
 * Makes `clearTimeout(undefined)` (and null) return at once without loading the timers; any other
 * argument goes to the real clearTimeout as before. Once per process, before the first call.
 */
export function skipEmptyClearTimeout(): void {
  const original = Object.getOwnPropertyDescriptor(globalThis, "clearTimeout");
  const load = original?.get;
  if (!original || !load) return; // not a lazy getter in this runtime: nothing to save
  const clear = (id?: number | ReturnType<typeof setTimeout>) => {
    if (id === undefined || id === null) return;
    (load.call(globalThis) as typeof clearTimeout)(id);
  };
  Object.defineProperty(globalThis, "clearTimeout", {
    configurable: true,
    enumerable: original.enumerable,
    get: () => clear,
    set: original.set,
  });
}

/** An abort signal with a deadline whose timer goes away with the work it bounds. */
export interface Deadline {
  readonly signal: AbortSignal;
  /** Stops the timer; call it when the bounded work has ended. */
  clear(): void;
}

/**
 * Like AbortSignal.timeout(ms), joined with `signal` when given, but clearable: AbortSignal.timeout's
 * timer stays armed after the work it bounded has ended and, firing, aborts a signal nobody watches with
 * a DOMException built for nobody (~0.35 ms of a shim's CPU per `ctr run --rm`, CPU profile).
 */
export function deadline(ms: number, signal?: AbortSignal): Deadline {
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new DOMException("Signal timed out.", "TimeoutError")),
    ms,
  );
  return {
    signal: signal ? AbortSignal.any([signal, controller.signal]) : controller.signal,
    clear: () => clearTimeout(timer),
  };
}
