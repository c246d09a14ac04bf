/**
 * A free host port for a port published without one (`ports: ["80"]`), as docker picks an ephemeral
 * port: the kernel chooses one for a socket bound to port 0, which is closed again at once. Another
 * process may take it before the container's port mapping does; the mapping then fails clearly.
 */
import { createServer } from "node:net";
import { createSocket } from "node:dgram";

export function pickHostPort(hostIP: string, protocol: "tcp" | "udp"): Promise<number> {
  const host = hostIP === "" ? "0.0.0.0" : hostIP;
  return new Promise((resolve, reject) => {
    if (protocol === "udp") {
      const socket = createSocket(host.includes(":") ? "udp6" : "udp4");
      socket.once("error", reject);
      socket.bind(0, host, () => {
        const { port } = socket.address();
        socket.close(() => resolve(port));
      });
      return;
    }
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => port ? resolve(port) : reject(new Error(`No free TCP port on ${host}`)));
    });
  });
}
