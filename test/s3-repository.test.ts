/**
 * Model repositories in an S3-compatible object store (`s3://host:port/bucket/path`),
 * end to end against s3rver, a real S3 server started here on loopback: the
 * server mirrors the prefix, serves its models, follows changes on poll
 * (added, changed and deleted objects), and names the stores it cannot read.
 */
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { CreateBucketCommand, DeleteObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import S3rver from "s3rver";
import { createServer } from "../src/index.js";
import { parseS3Url } from "../src/core/repository/s3-mirror.js";
import { EXAMPLES, postJson, startServer, type TestServer, waitFor } from "./helpers.js";

const SIMPLE_BODY = {
  inputs: [
    { name: "INPUT0", datatype: "INT32", shape: [1, 16], data: Array.from({ length: 16 }, (_, i) => i) },
    { name: "INPUT1", datatype: "INT32", shape: [1, 16], data: new Array(16).fill(1) },
  ],
};
const index = async (url: string) => (await postJson(`${url}/v2/repository/index`, {})).json as { name: string; state?: string }[];

describe("s3:// model repositories", () => {
  let store: S3rver;
  let dataDir: string;
  let client: S3Client;
  let endpoint: string;
  let s: TestServer;
  const savedEnv = { ...process.env };

  const put = async (key: string, body: Uint8Array | string) => client.send(new PutObjectCommand({ Bucket: "models", Key: key, Body: body }));
  const putModel = async (name: string, from: string) => {
    const config = (await fs.readFile(path.join(from, "config.pbtxt"), "utf8")).replace(/name: "[^"]*"/, `name: "${name}"`);
    await put(`team/repo/${name}/config.pbtxt`, config);
    await put(`team/repo/${name}/1/model.onnx`, await fs.readFile(path.join(from, "1", "model.onnx")));
  };

  before(async () => {
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), "tritium-s3rver-"));
    store = new S3rver({ port: 0, address: "127.0.0.1", silent: true, directory: dataDir });
    const { port } = await store.run();
    endpoint = `127.0.0.1:${port}`;
    // The server reads its credentials from the environment, as Triton does.
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER", AWS_DEFAULT_REGION: "us-east-1" });
    client = new S3Client({ endpoint: `http://${endpoint}`, forcePathStyle: true, region: "us-east-1" });
    await client.send(new CreateBucketCommand({ Bucket: "models" }));
    await putModel("simple", path.join(EXAMPLES, "simple"));
    await put("team/elsewhere/ignored/config.pbtxt", "not this repository's");
    s = await startServer({ modelRepository: `s3://${endpoint}/models/team/repo`, modelControlMode: "poll", repositoryPollSecs: 1 });
  });
  after(async () => {
    await s?.close();
    client?.destroy();
    await store?.close();
    await fs.rm(dataDir, { recursive: true, force: true });
    process.env = savedEnv;
  });

  it("serves the models under the prefix", async () => {
    const r = await postJson(`${s.url}/v2/models/simple/infer`, SIMPLE_BODY);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json.outputs[0].data, Array.from({ length: 16 }, (_, i) => i + 1));
    assert.deepEqual((await index(s.url)).map((m) => m.name), ["simple"]);
  });

  it("loads a model uploaded to the store, reloads a changed one and unloads a deleted one on poll", async () => {
    await putModel("simple_too", path.join(EXAMPLES, "simple"));
    await waitFor(async () => (await index(s.url)).some((m) => m.name === "simple_too" && m.state === "READY"));
    assert.equal((await postJson(`${s.url}/v2/models/simple_too/infer`, SIMPLE_BODY)).status, 200);

    const before = s.core.getModel("simple");
    const config = await fs.readFile(path.join(EXAMPLES, "simple", "config.pbtxt"), "utf8");
    await put("team/repo/simple/config.pbtxt", `${config}\n# changed in the store\n`);
    await waitFor(async () => s.core.getModel("simple") !== before);

    await client.send(new DeleteObjectCommand({ Bucket: "models", Key: "team/repo/simple_too/config.pbtxt" }));
    await client.send(new DeleteObjectCommand({ Bucket: "models", Key: "team/repo/simple_too/1/model.onnx" }));
    await waitFor(async () => (await index(s.url)).every((m) => m.name !== "simple_too"));
    assert.equal((await postJson(`${s.url}/v2/models/simple/infer`, SIMPLE_BODY)).status, 200);
  });

  it("reads Triton's URL forms", () => {
    assert.deepEqual(parseS3Url("s3://bucket/a/b"), { endpoint: undefined, bucket: "bucket", prefix: "a/b/" });
    assert.deepEqual(parseS3Url("s3://bucket"), { endpoint: undefined, bucket: "bucket", prefix: "" });
    assert.deepEqual(parseS3Url("s3://minio:9000/models/repo/"), { endpoint: "http://minio:9000", bucket: "models", prefix: "repo/" });
    assert.deepEqual(parseS3Url("s3://https://store.example:443/models/x"), { endpoint: "https://store.example:443", bucket: "models", prefix: "x/" });
    assert.throws(() => parseS3Url("s3://host:9000/"), /no bucket/);
  });

  it("refuses Google Cloud and Azure repositories, and a bucket it cannot read, by name", async () => {
    await assert.rejects(createServer({ modelRepository: "gs://bucket/models", quiet: true }), /'gs:\/\/bucket\/models': Google Cloud Storage repositories are not supported yet/);
    await assert.rejects(createServer({ modelRepository: "as://account/container", quiet: true }), /Azure Storage repositories are not supported yet/);
    await assert.rejects(createServer({ modelRepository: `s3://${endpoint}/no-such-bucket/x`, quiet: true }), /failed to read model repository 's3:\/\/.*\/no-such-bucket\/x'/);
  });
});
