/**
 * A misbehaving registry for pull tests: a Deno.serve proxy on 127.0.0.1 in front of a real registry
 * that can corrupt one blob, cut one blob's body after N bytes, or serve a hand-made manifest.
 */

export interface ProxyBehaviour {
  /** Flip one byte in this blob's body. */
  corrupt?: string;
  /** Send only this many bytes of the blob, then break the connection. */
  cut?: { digest: string; after: number };
  /** Send only this many bytes of the blob, then stall until the proxy is disposed. */
  stall?: { digest: string; after: number };
  /** Answer manifest requests for this tag with this body and content type. */
  manifest?: { tag: string; body: string; mediaType: string };
}

export interface TestProxy extends AsyncDisposable {
  /** `127.0.0.1:PORT` */
  readonly host: string;
  behaviour: ProxyBehaviour;
  /** Range headers seen on blob requests, by digest. */
  readonly ranges: Map<string, string[]>;
}

export function startProxy(upstream: string): TestProxy {
  const ranges = new Map<string, string[]>();
  const state: { behaviour: ProxyBehaviour } = { behaviour: {} };
  const closing = Promise.withResolvers<void>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    const b = state.behaviour;
    const m = b.manifest;
    const manifestDigest = m ? await sha256(m.body) : "";
    if (
      m &&
      (url.pathname.endsWith(`/manifests/${m.tag}`) || url.pathname.endsWith(`/manifests/${manifestDigest}`))
    ) {
      return new Response(req.method === "HEAD" ? null : m.body, {
        headers: { "content-type": m.mediaType },
      });
    }
    const blob = /\/blobs\/(sha256:[a-f0-9]{64})$/.exec(url.pathname)?.[1];
    if (blob && req.method === "GET") {
      const list = ranges.get(blob) ?? [];
      list.push(req.headers.get("range") ?? "");
      ranges.set(blob, list);
    }
    const headers = new Headers(req.headers);
    headers.delete("host");
    const res = await fetch(`http://${upstream}${url.pathname}${url.search}`, {
      method: req.method,
      headers,
      body: req.body,
      redirect: "manual",
    });
    if (
      !blob || req.method !== "GET" || !res.body ||
      (blob !== b.corrupt && blob !== b.cut?.digest && blob !== b.stall?.digest)
    ) {
      return res;
    }
    const out = new Headers(res.headers);
    if (blob === b.corrupt) {
      const bytes = new Uint8Array(await res.arrayBuffer());
      bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
      return new Response(bytes, { status: res.status, headers: out });
    }
    const stall = blob === b.stall?.digest;
    let left = stall ? b.stall!.after : b.cut!.after;
    const reader = res.body.getReader();
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        const { value, done } = await reader.read();
        if (done) return c.close();
        if (value.byteLength >= left) {
          c.enqueue(value.subarray(0, left));
          await reader.cancel();
          if (stall) await closing.promise;
          // Give the bytes a moment to leave, then break the connection mid-body.
          await new Promise((r) => setTimeout(r, 50));
          c.error(new Error("proxy cut the connection"));
          return;
        }
        left -= value.byteLength;
        c.enqueue(value);
      },
    });
    return new Response(body, { status: res.status, headers: out });
  });
  return {
    host: `127.0.0.1:${server.addr.port}`,
    get behaviour() {
      return state.behaviour;
    },
    set behaviour(v) {
      state.behaviour = v;
    },
    ranges,
    async [Symbol.asyncDispose]() {
      closing.resolve();
      await server.shutdown();
    },
  };
}

async function sha256(text: string): Promise<string> {
  const hash = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return "sha256:" + Array.from(new Uint8Array(hash), (b) => b.toString(16).padStart(2, "0")).join("");
}
