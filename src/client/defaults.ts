/** Where a client finds the daemon when nothing says otherwise; apart, so flag parsing loads no client. */
export const defaultAddress = "/run/berth/berth.sock";
export const defaultNamespace = "default";
