import assert from "node:assert/strict";
import { renderTemplate } from "./template.ts";

const data = {
  Name: "/web",
  State: { Status: "running", Running: true, Pid: 42 },
  Config: { Labels: { "nerdctl/name": "web", team: "blue" }, Cmd: ["sleep", "100"] },
  Nothing: null,
};

Deno.test("renderTemplate() fills fields, nested fields, json and index as Go's templates print them", () => {
  assert.equal(renderTemplate("{{.Name}}", data), "/web");
  assert.equal(
    renderTemplate("{{ .State.Status }} {{.State.Pid}} {{.State.Running}}", data),
    "running 42 true",
  );
  assert.equal(renderTemplate("{{json .State}}", data), '{"Status":"running","Running":true,"Pid":42}');
  assert.equal(renderTemplate('{{index .Config.Labels "team"}}', data), "blue");
  assert.equal(renderTemplate("{{.Config.Cmd}}", data), "[sleep 100]");
  assert.equal(renderTemplate("{{.Config.Labels}}", data), "map[nerdctl/name:web team:blue]");
  assert.equal(renderTemplate("{{.Nothing}}|{{.Missing}}", data), "<nil>|<no value>");
  assert.equal(renderTemplate("{{.Name}}\\t{{upper .State.Status}}", data), "/web\tRUNNING");
  assert.equal(JSON.parse(renderTemplate("{{json .}}", data)).Name, "/web");
});

Deno.test("renderTemplate() refuses what it cannot do, naming the action", () => {
  assert.throws(() => renderTemplate("{{range .X}}{{end}}", data), /"\{\{range \.X\}\}" is not supported/);
  assert.throws(() => renderTemplate("{{Name}}", data), /"Name" is not a field/);
});
