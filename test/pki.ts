/**
 * A throwaway PKI for the TLS tests (gRPC and HTTPS), made with the openssl
 * CLI in a temporary folder.
 */
import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** PEM files of a test PKI: a CA, a server and a client it signed, and a client of another CA. */
export interface Pki {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  rogueCa: string;
  rogueCert: string;
  rogueKey: string;
}

/** Makes the certificates with the openssl CLI (EC P-256 keys: fast). */
export async function makePki(): Promise<Pki> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "tritium-pki-"));
  const p = (f: string) => path.join(dir, f);
  const openssl = (...args: string[]) => run("openssl", args, { cwd: dir });
  const key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  for (const ca of ["ca", "rogue-ca"]) {
    await openssl("req", "-x509", ...key, "-keyout", `${ca}.key`, "-out", `${ca}.crt`, "-days", "2", "-subj", `/CN=Tritium test ${ca}`);
  }
  await fs.writeFile(p("server.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  await fs.writeFile(p("client.ext"), "extendedKeyUsage=clientAuth\n");
  const leaf = async (name: string, ca: string, ext: string) => {
    await openssl("req", ...key, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`);
    await openssl("x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.crt`, "-CAkey", `${ca}.key`, "-CAcreateserial", "-out", `${name}.crt`, "-days", "2", "-extfile", ext);
  };
  await leaf("server", "ca", "server.ext");
  await leaf("client", "ca", "client.ext");
  await leaf("rogue", "rogue-ca", "client.ext");
  return {
    dir,
    ca: p("ca.crt"),
    serverCert: p("server.crt"),
    serverKey: p("server.key"),
    clientCert: p("client.crt"),
    clientKey: p("client.key"),
    rogueCa: p("rogue-ca.crt"),
    rogueCert: p("rogue.crt"),
    rogueKey: p("rogue.key"),
  };
}

