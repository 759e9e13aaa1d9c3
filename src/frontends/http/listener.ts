import type http from "node:http";
import type { AddressInfo } from "node:net";

/**
 * Starting and stopping a `node:http` server, shared by the HTTP/REST and the
 * metrics frontends. Resolves with the bound port (0 asks for a free one).
 */
export async function listenHttp(server: http.Server, port: number, address: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, address, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

/** Stops accepting connections; idle keep-alive connections close now, busy ones when they finish. */
export async function closeHttp(server: http.Server): Promise<void> {
  if (!server.listening) return;
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}
