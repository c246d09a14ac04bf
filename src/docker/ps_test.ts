import assert from "node:assert/strict";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ellipsis, goTimeString, matchesFilters, parsePsFilters, psEntry } from "./ps.ts";
import type { ContainerState } from "./status.ts";

const now = new Date("2025-03-01T12:00:00Z");
const running: ContainerState = {
  status: "running",
  running: true,
  paused: false,
  pid: 9,
  exitCode: 0,
  startedAt: new Date("2025-03-01T11:59:57Z"),
};
const web = {
  id: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
  image: "docker.io/library/nginx:1",
  labels: {
    "nerdctl/name": "web",
    "nerdctl/networks": '["bridge"]',
    "nerdctl/ports": '[{"HostPort":18080,"ContainerPort":80,"Protocol":"tcp","HostIP":"0.0.0.0"}]',
    "nerdctl/mounts":
      '[{"Type":"volume","Name":"data","Source":"/v/data/_data","Destination":"/data","RW":true}]',
  },
  createdAt: timestampFromDate(new Date("2025-03-01T11:58:00Z")),
};

Deno.test("psEntry() gives docker ps's columns and --format json keys", () => {
  const e = psEntry(web, ["nginx", "-g", "daemon off;", "-x"], running, { now });
  assert.deepEqual(e, {
    ID: "0123456789ab",
    Image: "docker.io/library/nginx:1",
    Command: '"nginx -g daemon off…"',
    CreatedAt: "2025-03-01 11:58:00 +0000 UTC",
    RunningFor: "2 minutes ago",
    Status: "Up 3 seconds",
    State: "running",
    Ports: "0.0.0.0:18080->80/tcp",
    Names: "web",
    Labels: `nerdctl/mounts=${web.labels["nerdctl/mounts"]},nerdctl/name=web,nerdctl/networks=["bridge"],` +
      `nerdctl/ports=${web.labels["nerdctl/ports"]}`,
    Networks: "bridge",
    Mounts: "data",
    LocalVolumes: "0",
    Size: "",
  });
  const full = psEntry(web, ["nginx", "-g", "daemon off;", "-x"], running, { now, noTrunc: true });
  assert.equal(full.ID, web.id);
  assert.equal(full.Command, JSON.stringify("nginx -g daemon off; -x"));
  // A container made by ctr: no labels, its id is its name.
  const plain = psEntry({ ...web, id: "plain", labels: {} }, [], running, { now });
  assert.equal(plain.Names, "plain");
  assert.equal(plain.Command, '""');
  assert.equal(plain.Ports, "");
});

Deno.test("ellipsis() cuts to the width with docker's ellipsis character", () => {
  assert.equal(ellipsis("sleep 1000", 20), "sleep 1000");
  assert.equal(ellipsis("x".repeat(20), 20), "x".repeat(20));
  assert.equal(ellipsis("x".repeat(21), 20), `${"x".repeat(19)}…`);
  assert.equal(goTimeString(new Date("2025-01-02T03:04:05.678Z")), "2025-01-02 03:04:05 +0000 UTC");
});

Deno.test("ps filters: label and name and status and id, each key ANDed, one key's values ORed", () => {
  const f = (...args: string[]) => parsePsFilters(args);
  assert.ok(matchesFilters(web, running, f("label=nerdctl/name=web")));
  assert.ok(matchesFilters(web, running, f("label=nerdctl/name")));
  assert.ok(!matchesFilters(web, running, f("label=nerdctl/name=db")));
  assert.ok(matchesFilters(web, running, f("name=we", "status=running")));
  assert.ok(!matchesFilters(web, running, f("name=we", "status=exited")));
  assert.ok(matchesFilters(web, running, f("status=exited", "status=running")));
  assert.ok(matchesFilters(web, running, f("id=0123")));
  assert.throws(() => f("colour=red"), /Invalid filter "colour=red"/);
  assert.throws(() => f("status=sleeping"), /status must be one of created, restarting/);
});
