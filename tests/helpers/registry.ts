/**
 * A real OCI distribution registry for tests: Debian's `docker-registry` (distribution v2) on 127.0.0.1,
 * on a free port, with filesystem storage in a temp dir and optional htpasswd basic auth.
 */

export interface RegistryCredentials {
  readonly username: string;
  readonly password: string;
}

export interface StartRegistryOptions {
  /** Require basic auth with these credentials (htpasswd, bcrypt). */
  readonly auth?: RegistryCredentials;
  /**
   * Require bearer tokens (distribution's token auth) from a token server this helper runs on 127.0.0.1;
   * it grants every requested scope to these credentials and refuses anyone else.
   */
  readonly tokenAuth?: RegistryCredentials;
  /** Serve HTTPS with a certificate for 127.0.0.1 from a CA made for this registry (see caCertPath). */
  readonly tls?: boolean;
  /** How long to wait for `/v2/` to answer; default 15 s. */
  readonly startTimeoutMs?: number;
  readonly signal?: AbortSignal;
}

export interface TestRegistry extends AsyncDisposable {
  /** `127.0.0.1:PORT`, the registry part of an image reference. */
  readonly host: string;
  /** `http://127.0.0.1:PORT` (https with tls). */
  readonly url: string;
  /** With tls: the PEM file of the CA that signed the registry's certificate. */
  readonly caCertPath?: string;
  readonly credentials?: RegistryCredentials;
  /** With tokenAuth: the token server, and how many tokens it issued. */
  readonly tokenServer?: { readonly url: string; readonly issued: () => number };
  /** The registry's log (stdout and stderr), for failure messages. */
  readonly logPath: string;
  stop(): Promise<void>;
}

const REGISTRY_BIN = "/usr/bin/docker-registry";

export async function startRegistry(options: StartRegistryOptions = {}): Promise<TestRegistry> {
  const dir = await Deno.makeTempDir({ prefix: "berth-registry-" });
  let tokens: TokenServer | undefined;
  try {
    if (options.tokenAuth) tokens = await startTokenServer(dir, options.tokenAuth);
    // The port is found by binding and releasing it, so another process may take it before the registry
    // binds: retry with a fresh port when the registry exits early.
    let lastError: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        return await launch(dir, options, tokens);
      } catch (err) {
        lastError = err;
        if (!(err instanceof RegistryExited)) break;
      }
    }
    throw lastError;
  } catch (err) {
    await tokens?.server.shutdown();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw err;
  }
}

class RegistryExited extends Error {}

async function launch(
  dir: string,
  options: StartRegistryOptions,
  tokens: TokenServer | undefined,
): Promise<TestRegistry> {
  const port = freePort();
  const host = `127.0.0.1:${port}`;
  const tls = options.tls ? await makeServerCert(dir) : undefined;
  const url = `${tls ? "https" : "http"}://${host}`;
  const storage = `${dir}/storage`;
  await Deno.mkdir(storage, { recursive: true });
  let authSection = "";
  if (options.auth) {
    const htpasswdPath = `${dir}/htpasswd`;
    await Deno.writeTextFile(htpasswdPath, await bcryptLine(options.auth));
    authSection = `auth:\n  htpasswd:\n    realm: berth-test\n    path: ${htpasswdPath}\n`;
  } else if (tokens) {
    authSection = [
      "auth:",
      "  token:",
      `    realm: ${tokens.url}/token`,
      `    service: ${TOKEN_SERVICE}`,
      `    issuer: ${TOKEN_ISSUER}`,
      `    rootcertbundle: ${tokens.certPath}`,
      "",
    ].join("\n");
  }
  const configPath = `${dir}/config.yml`;
  await Deno.writeTextFile(
    configPath,
    [
      "version: 0.1",
      "log:",
      "  level: warn",
      "  accesslog:",
      "    disabled: true",
      "storage:",
      "  filesystem:",
      `    rootdirectory: ${storage}`,
      "  delete:",
      "    enabled: true",
      "  maintenance:",
      "    uploadpurging:",
      "      enabled: false",
      "http:",
      `  addr: ${host}`,
      "  secret: berth-test-secret",
      ...(tls ? ["  tls:", `    certificate: ${tls.certPath}`, `    key: ${tls.keyPath}`] : []),
      authSection,
    ].join("\n"),
  );
  const logPath = `${dir}/registry.log`;
  await Deno.writeTextFile(logPath, "");
  const child = new Deno.Command(REGISTRY_BIN, {
    args: ["serve", configPath],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Pipe output into the log file so a chatty registry never blocks on a full pipe.
  const drains = [child.stdout, child.stderr].map(async (stream) => {
    const file = await Deno.open(logPath, { write: true, append: true });
    await stream.pipeTo(file.writable).catch(() => {});
  });
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });

  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      if (!exited) {
        try {
          child.kill("SIGTERM");
        } catch { /* already gone */ }
        const timer = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch { /* already gone */ }
        }, 3000);
        await status;
        clearTimeout(timer);
      }
      await Promise.all(drains);
      await tokens?.server.shutdown();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    })();
    return stopped;
  };

  const deadline = Date.now() + (options.startTimeoutMs ?? 15_000);
  try {
    while (true) {
      options.signal?.throwIfAborted();
      if (exited) {
        const text = await Deno.readTextFile(logPath).catch(() => "");
        throw new RegistryExited(`Registry on ${host} exited while starting: ${text.trim().slice(-2000)}`);
      }
      if (await answers(`${url}/v2/`, tls?.caPem)) break;
      if (Date.now() > deadline) throw new Error(`Registry on ${host} did not answer /v2/ in time`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } catch (err) {
    // Only the registry's own directory content goes; the temp dir is reused for a retry.
    if (!exited) {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
    }
    await status;
    await Promise.all(drains);
    await Deno.remove(storage, { recursive: true }).catch(() => {});
    throw err;
  }

  return {
    host,
    url,
    credentials: options.auth ?? options.tokenAuth,
    ...(tls ? { caCertPath: tls.caPath } : {}),
    ...(tokens ? { tokenServer: { url: tokens.url, issued: () => tokens.issued } } : {}),
    logPath,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function answers(url: string, caPem: string | undefined): Promise<boolean> {
  const client = caPem ? Deno.createHttpClient({ caCerts: [caPem] }) : undefined;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000), ...(client ? { client } : {}) });
    await res.body?.cancel();
    // 401 counts: an auth-protected registry is up when it challenges.
    return res.status === 200 || res.status === 401;
  } catch {
    return false;
  } finally {
    client?.close();
  }
}

async function openssl(args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

/** A CA and a server certificate for 127.0.0.1 signed by it (rustls refuses a CA certificate as a leaf). */
async function makeServerCert(dir: string) {
  const caPath = `${dir}/ca.pem`;
  const caKey = `${dir}/ca-key.pem`;
  const keyPath = `${dir}/server-key.pem`;
  const csrPath = `${dir}/server.csr`;
  const certPath = `${dir}/server.pem`;
  const extPath = `${dir}/server.ext`;
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await openssl([
    "req",
    "-x509",
    ...ec,
    "-keyout",
    caKey,
    "-out",
    caPath,
    "-days",
    "2",
    "-subj",
    "/CN=berth-test-ca",
  ]);
  await openssl(["req", ...ec, "-keyout", keyPath, "-out", csrPath, "-subj", "/CN=127.0.0.1"]);
  await Deno.writeTextFile(
    extPath,
    "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
  );
  await openssl([
    ...["x509", "-req", "-in", csrPath, "-CA", caPath, "-CAkey", caKey, "-CAcreateserial"],
    ...["-out", certPath, "-days", "2", "-extfile", extPath],
  ]);
  return { caPath, caPem: await Deno.readTextFile(caPath), keyPath, certPath };
}

async function bcryptLine(auth: RegistryCredentials): Promise<string> {
  // htpasswd (Debian apache2-utils) makes the bcrypt hash the registry's htpasswd provider requires.
  const out = await new Deno.Command("htpasswd", {
    args: ["-B", "-b", "-n", auth.username, auth.password],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`htpasswd failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return new TextDecoder().decode(out.stdout).trim() + "\n";
}

const TOKEN_SERVICE = "berth-test-registry";
const TOKEN_ISSUER = "berth-test-issuer";

interface TokenServer {
  readonly server: Deno.HttpServer<Deno.NetAddr>;
  readonly url: string;
  readonly certPath: string;
  issued: number;
}

/**
 * A token server after distribution's token spec: ES256 JWTs carrying the signing certificate in `x5c`,
 * which the registry verifies against its rootcertbundle (the same self-signed certificate).
 */
async function startTokenServer(dir: string, creds: RegistryCredentials): Promise<TokenServer> {
  const keyPath = `${dir}/token-key.pem`;
  const certPath = `${dir}/token-cert.pem`;
  const made = await new Deno.Command("openssl", {
    args: [
      ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"],
      ...["-keyout", keyPath, "-out", certPath, "-days", "2", "-subj", "/CN=berth-test-token"],
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!made.success) {
    throw new Error(`openssl could not make a token key: ${new TextDecoder().decode(made.stderr)}`);
  }
  const pemBody = (pem: string) => pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
  const key = await crypto.subtle.importKey(
    "pkcs8",
    Uint8Array.from(atob(pemBody(await Deno.readTextFile(keyPath))), (c) => c.charCodeAt(0)),
    { name: "ECDSA", namedCurve: "P-256" },
    false,
    ["sign"],
  );
  const x5c = [pemBody(await Deno.readTextFile(certPath))];
  const expected = `Basic ${btoa(`${creds.username}:${creds.password}`)}`;
  const state = { issued: 0 };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    if (url.pathname !== "/token") return new Response(null, { status: 404 });
    if (req.headers.get("authorization") !== expected) return new Response("unauthorized", { status: 401 });
    const access = url.searchParams.getAll("scope").flatMap((s) => s.split(" ")).filter(Boolean).map(
      (scope) => {
        const [type, ...rest] = scope.split(":");
        const actions = rest.pop() ?? "";
        return { type, name: rest.join(":"), actions: actions.split(",").filter(Boolean) };
      },
    );
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      iss: TOKEN_ISSUER,
      sub: creds.username,
      aud: url.searchParams.get("service") ?? TOKEN_SERVICE,
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: crypto.randomUUID(),
      access,
    };
    const b64url = (data: Uint8Array) =>
      btoa(String.fromCharCode(...data)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
    const enc = (v: unknown) => b64url(new TextEncoder().encode(JSON.stringify(v)));
    const signingInput = `${enc({ typ: "JWT", alg: "ES256", x5c })}.${enc(claims)}`;
    const signature = new Uint8Array(
      await crypto.subtle.sign(
        { name: "ECDSA", hash: "SHA-256" },
        key,
        new TextEncoder().encode(signingInput),
      ),
    );
    state.issued++;
    return Response.json({ token: `${signingInput}.${b64url(signature)}`, expires_in: 300 });
  });
  const tokenServer: TokenServer = {
    server,
    url: `http://127.0.0.1:${server.addr.port}`,
    certPath,
    get issued() {
      return state.issued;
    },
  };
  return tokenServer;
}
