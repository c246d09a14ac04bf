import assert from "node:assert/strict";
import { type AuthConfig, credentialsFor } from "./service.ts";

const auth = (a: Partial<AuthConfig>): AuthConfig => ({
  username: "",
  password: "",
  auth: "",
  serverAddress: "",
  identityToken: "",
  registryToken: "",
  ...a,
});

Deno.test("credentialsFor() applies a pull secret only to the host it names, as containerd's ParseAuth", () => {
  assert.deepEqual(credentialsFor(auth({ username: "u", password: "p" }), "r.io"), {
    username: "u",
    password: "p",
  });
  assert.equal(credentialsFor(auth({ username: "u", serverAddress: "https://other.io" }), "r.io"), undefined);
  assert.deepEqual(credentialsFor(auth({ username: "u", serverAddress: "r.io:5000" }), "r.io:5000"), {
    username: "u",
    password: "",
  });
  assert.deepEqual(credentialsFor(auth({ auth: btoa("a:b:c") }), "r.io"), { username: "a", password: "b:c" });
  assert.deepEqual(credentialsFor(auth({ identityToken: "tok" }), "r.io"), { username: "", password: "tok" });
  assert.equal(credentialsFor(auth({}), "r.io"), undefined);
  assert.throws(() => credentialsFor(auth({ auth: btoa("nocolon") }), "r.io"), /not base64 of user:password/);
});
