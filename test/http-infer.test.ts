/**
 * POST /v2/models/{m}/infer over real HTTP: JSON tensors (flat and nested),
 * the binary tensor data extension in both directions for every datatype
 * fixture, raw binary mode, request ids, output subsets, classification and
 * request/response compression.
 */
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import zlib from "node:zlib";
import { after, before, describe, it } from "node:test";
import {
  EXAMPLES, FIXTURES, bytesElements, bytesOf, httpRequest, postBinary, splitBinaryResponse, startServer, tempRepository,
  type RawResponse, type TestServer,
} from "./helpers.js";

/** One identity fixture per datatype, with values that survive JSON exactly. */
interface TypeCase {
  datatype: string;
  model: string;
  /** Row-major values of a [2,3] tensor, as JSON writes them. */
  values: unknown[];
  /** The same values as little-endian bytes. */
  bytes: Buffer;
}

const u16 = (xs: number[]) => bytesOf(Uint16Array.from(xs));
const CASES: TypeCase[] = [
  { datatype: "BOOL", values: [true, false, true, false, false, true], bytes: Buffer.from([1, 0, 1, 0, 0, 1]) },
  { datatype: "UINT8", values: [0, 1, 255, 7, 128, 3], bytes: Buffer.from([0, 1, 255, 7, 128, 3]) },
  { datatype: "UINT16", values: [0, 1, 65535, 300, 32768, 9], bytes: u16([0, 1, 65535, 300, 32768, 9]) },
  { datatype: "UINT32", values: [0, 1, 4294967295, 70000, 2147483648, 5], bytes: bytesOf(Uint32Array.from([0, 1, 4294967295, 70000, 2147483648, 5])) },
  {
    datatype: "UINT64",
    values: [0, 1, 9007199254740991, 4294967296, 12345678901, 2],
    bytes: bytesOf(BigUint64Array.from([0n, 1n, 9007199254740991n, 4294967296n, 12345678901n, 2n])),
  },
  { datatype: "INT8", values: [-128, -1, 0, 1, 127, 42], bytes: bytesOf(Int8Array.from([-128, -1, 0, 1, 127, 42])) },
  { datatype: "INT16", values: [-32768, -1, 0, 1, 32767, 1000], bytes: bytesOf(Int16Array.from([-32768, -1, 0, 1, 32767, 1000])) },
  {
    datatype: "INT32",
    values: [-2147483648, -1, 0, 1, 2147483647, 123456],
    bytes: bytesOf(Int32Array.from([-2147483648, -1, 0, 1, 2147483647, 123456])),
  },
  {
    datatype: "INT64",
    values: [-9007199254740991, -1, 0, 1, 9007199254740991, 1099511627776],
    bytes: bytesOf(BigInt64Array.from([-9007199254740991n, -1n, 0n, 1n, 9007199254740991n, 1099511627776n])),
  },
  // IEEE half bit patterns of 0, -1.5, 65504, 2.5, -0.25, 1.
  { datatype: "FP16", values: [0, -1.5, 65504, 2.5, -0.25, 1], bytes: u16([0x0000, 0xbe00, 0x7bff, 0x4100, 0xb400, 0x3c00]) },
  { datatype: "FP32", values: [0, -1.5, 3.25, 1024, 0.125, 10000000000], bytes: bytesOf(Float32Array.from([0, -1.5, 3.25, 1024, 0.125, 10000000000])) },
  { datatype: "FP64", values: [0.1, -2.5, 1e300, -1e-300, 3.141592653589793, 7], bytes: bytesOf(Float64Array.from([0.1, -2.5, 1e300, -1e-300, 3.141592653589793, 7])) },
  { datatype: "BYTES", values: ["", "hello", "ünïcødé ✓", "a b", "{\"json\":1}", "x".repeat(300)], bytes: bytesElements(["", "hello", "ünïcødé ✓", "a b", "{\"json\":1}", "x".repeat(300)]) },
].map((c) => ({ ...c, model: `identity_${c.datatype.toLowerCase()}` }));

const nest = (flat: unknown[]) => [flat.slice(0, 3), flat.slice(3, 6)];

describe("HTTP inference", () => {
  let s: TestServer;
  let repo: string;
  const infer = (model: string, body: unknown, headers: Record<string, string | number> = {}): Promise<RawResponse> =>
    httpRequest(`${s.url}/v2/models/${model}/infer`, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...headers },
      body: typeof body === "string" || Buffer.isBuffer(body) ? (body as string | Buffer) : JSON.stringify(body),
    });

  before(async () => {
    const models: Record<string, string> = {};
    for (const c of CASES) models[c.model] = path.join(FIXTURES, c.model);
    for (const m of ["simple", "simple_string", "image_classifier"]) models[m] = path.join(EXAMPLES, m);
    repo = await tempRepository(models);
    // One instance per fixture keeps start-up quick; behaviour does not depend on the count.
    for (const c of CASES) await fs.appendFile(path.join(repo, c.model, "config.pbtxt"), "\ninstance_group [ { count: 1 kind: KIND_CPU } ]\n");
    s = await startServer({ modelRepository: repo });
  });
  after(async () => {
    await s?.close();
    if (repo) await fs.rm(repo, { recursive: true, force: true });
  });

  describe("every datatype round-trips through its identity model", () => {
    for (const c of CASES) {
      describe(c.datatype, () => {
        it("JSON nested data in, JSON data out", async () => {
          const res = await infer(c.model, { inputs: [{ name: "INPUT0", shape: [2, 3], datatype: c.datatype, data: nest(c.values) }] });
          assert.equal(res.status, 200, res.body.toString());
          assert.match(String(res.headers["content-type"]), /^application\/json/);
          assert.equal(res.headers["inference-header-content-length"], undefined);
          assert.deepEqual(res.json, {
            model_name: c.model,
            model_version: "1",
            outputs: [{ name: "OUTPUT0", datatype: c.datatype, shape: [2, 3], data: c.values }],
          });
        });

        it("JSON flat data in, binary out via per-output binary_data", async () => {
          const res = await infer(c.model, {
            inputs: [{ name: "INPUT0", shape: [2, 3], datatype: c.datatype, data: c.values }],
            outputs: [{ name: "OUTPUT0", parameters: { binary_data: true } }],
          });
          assert.equal(res.status, 200, res.body.toString());
          assert.equal(res.headers["content-type"], "application/octet-stream");
          const { header, binary } = splitBinaryResponse(res);
          assert.deepEqual(header.outputs, [
            { name: "OUTPUT0", datatype: c.datatype, shape: [2, 3], parameters: { binary_data_size: c.bytes.byteLength } },
          ]);
          assert.deepEqual(binary.get("OUTPUT0"), c.bytes);
        });

        it("binary in, binary out via request-level binary_data_output", async () => {
          const res = await postBinary(`${s.url}/v2/models/${c.model}/infer`, {
            parameters: { binary_data_output: true },
            inputs: [{ name: "INPUT0", shape: [2, 3], datatype: c.datatype, parameters: { binary_data_size: c.bytes.byteLength } }],
          }, [c.bytes]);
          assert.equal(res.status, 200, res.body.toString());
          assert.equal(res.headers["content-type"], "application/octet-stream");
          const { header, binary } = splitBinaryResponse(res);
          assert.equal(header.model_name, c.model);
          assert.equal(header.outputs[0].parameters.binary_data_size, c.bytes.byteLength);
          assert.equal(header.outputs[0].data, undefined);
          assert.deepEqual(binary.get("OUTPUT0"), c.bytes);
        });

        it("binary in, JSON out", async () => {
          const res = await postBinary(`${s.url}/v2/models/${c.model}/infer`, {
            inputs: [{ name: "INPUT0", shape: [2, 3], datatype: c.datatype, parameters: { binary_data_size: c.bytes.byteLength } }],
          }, [c.bytes]);
          assert.equal(res.status, 200, res.body.toString());
          assert.match(String(res.headers["content-type"]), /^application\/json/);
          assert.deepEqual(res.json.outputs, [{ name: "OUTPUT0", datatype: c.datatype, shape: [2, 3], data: c.values }]);
        });
      });
    }

    it("writes 64-bit integers beyond 2^53 with every digit in JSON", async () => {
      const big = BigInt64Array.from([9223372036854775807n, -9223372036854775808n]);
      const res = await postBinary(`${s.url}/v2/models/identity_int64/infer`, {
        inputs: [{ name: "INPUT0", shape: [1, 2], datatype: "INT64", parameters: { binary_data_size: 16 } }],
      }, [bytesOf(big)]);
      assert.equal(res.status, 200);
      assert.ok(res.body.toString().includes('"data":[9223372036854775807,-9223372036854775808]'), res.body.toString());
      const ubig = BigUint64Array.from([18446744073709551615n]);
      const ures = await postBinary(`${s.url}/v2/models/identity_uint64/infer`, {
        inputs: [{ name: "INPUT0", shape: [1, 1], datatype: "UINT64", parameters: { binary_data_size: 8 } }],
      }, [bytesOf(ubig)]);
      assert.ok(ures.body.toString().includes('"data":[18446744073709551615]'), ures.body.toString());
    });
  });

  describe("binary tensor data extension", () => {
    const a = Int32Array.from({ length: 16 }, (_, i) => i * 3);
    const b = Int32Array.from({ length: 16 }, (_, i) => i);

    it("mixes binary and JSON inputs, and binary and JSON outputs, in one request", async () => {
      const res = await postBinary(`${s.url}/v2/models/simple/infer`, {
        inputs: [
          { name: "INPUT0", shape: [1, 16], datatype: "INT32", parameters: { binary_data_size: 64 } },
          { name: "INPUT1", shape: [1, 16], datatype: "INT32", data: Array.from(b) },
        ],
        outputs: [{ name: "OUTPUT0", parameters: { binary_data: true } }, { name: "OUTPUT1", parameters: { binary_data: false } }],
      }, [bytesOf(a)]);
      assert.equal(res.status, 200, res.body.toString());
      const { header, binary } = splitBinaryResponse(res);
      assert.deepEqual(header.outputs[0], { name: "OUTPUT0", datatype: "INT32", shape: [1, 16], parameters: { binary_data_size: 64 } });
      assert.deepEqual(header.outputs[1], { name: "OUTPUT1", datatype: "INT32", shape: [1, 16], data: Array.from(a, (x, i) => x - b[i]!) });
      assert.deepEqual(Array.from(new Int32Array(new Uint8Array(binary.get("OUTPUT0")!).buffer)), Array.from(a, (x, i) => x + b[i]!));
    });

    it("lets per-output binary_data false override request-level binary_data_output", async () => {
      const res = await postBinary(`${s.url}/v2/models/simple/infer`, {
        parameters: { binary_data_output: true },
        inputs: [
          { name: "INPUT0", shape: [1, 16], datatype: "INT32", parameters: { binary_data_size: 64 } },
          { name: "INPUT1", shape: [1, 16], datatype: "INT32", parameters: { binary_data_size: 64 } },
        ],
        outputs: [{ name: "OUTPUT0" }, { name: "OUTPUT1", parameters: { binary_data: false } }],
      }, [bytesOf(a), bytesOf(b)]);
      assert.equal(res.status, 200, res.body.toString());
      const { header, binary } = splitBinaryResponse(res);
      assert.equal(header.outputs[0].parameters.binary_data_size, 64);
      assert.equal(binary.size, 1);
      assert.deepEqual(header.outputs[1].data, Array.from(a, (x, i) => x - b[i]!));
    });

    it("answers with application/json when no output is binary, even for a binary request", async () => {
      const res = await postBinary(`${s.url}/v2/models/simple/infer`, {
        inputs: [
          { name: "INPUT0", shape: [1, 16], datatype: "INT32", parameters: { binary_data_size: 64 } },
          { name: "INPUT1", shape: [1, 16], datatype: "INT32", parameters: { binary_data_size: 64 } },
        ],
      }, [bytesOf(a), bytesOf(b)]);
      assert.equal(res.status, 200);
      assert.match(String(res.headers["content-type"]), /^application\/json/);
      assert.equal(res.headers["inference-header-content-length"], undefined);
      assert.equal(res.json.outputs.length, 2);
    });

    it("serves raw binary mode (Inference-Header-Content-Length: 0) on a single-input model as batch 1", async () => {
      const x = Float32Array.from([1.5, -2, 0, 4.25, 1e-3]);
      const res = await httpRequest(`${s.url}/v2/models/identity_fp32/infer`, {
        method: "POST",
        headers: { "Content-Type": "application/octet-stream", "Inference-Header-Content-Length": 0 },
        body: bytesOf(x),
      });
      assert.equal(res.status, 200, res.body.toString());
      assert.equal(res.headers["content-type"], "application/octet-stream");
      const { header, binary } = splitBinaryResponse(res);
      assert.equal(header.model_name, "identity_fp32");
      assert.deepEqual(header.outputs, [{ name: "OUTPUT0", datatype: "FP32", shape: [1, 5], parameters: { binary_data_size: 20 } }]);
      assert.deepEqual(binary.get("OUTPUT0"), bytesOf(x));
    });

    it("refuses raw binary mode on a model with two inputs, naming the model", async () => {
      const res = await httpRequest(`${s.url}/v2/models/simple/infer`, {
        method: "POST",
        headers: { "Inference-Header-Content-Length": 0 },
        body: Buffer.alloc(128),
      });
      assert.equal(res.status, 400);
      assert.match(res.json.error, /'simple'/);
    });
  });

  describe("request fields", () => {
    const inputs = [
      { name: "INPUT0", shape: [1, 16], datatype: "INT32", data: Array.from({ length: 16 }, (_, i) => i) },
      { name: "INPUT1", shape: [1, 16], datatype: "INT32", data: Array.from({ length: 16 }, () => 2) },
    ];

    it("echoes the request id first, and leaves id out when the request has none", async () => {
      const withId = await infer("simple", { id: "req-42/ü", inputs });
      assert.equal(withId.status, 200);
      assert.deepEqual(Object.keys(withId.json), ["id", "model_name", "model_version", "outputs"]);
      assert.equal(withId.json.id, "req-42/ü");
      const without = await infer("simple", { inputs });
      assert.deepEqual(Object.keys(without.json), ["model_name", "model_version", "outputs"]);
    });

    it("returns only the requested outputs, in the requested order", async () => {
      const one = await infer("simple", { inputs, outputs: [{ name: "OUTPUT1" }] });
      assert.equal(one.status, 200);
      assert.deepEqual(one.json.outputs, [{ name: "OUTPUT1", datatype: "INT32", shape: [1, 16], data: Array.from({ length: 16 }, (_, i) => i - 2) }]);
      const both = await infer("simple", { inputs, outputs: [{ name: "OUTPUT1" }, { name: "OUTPUT0" }] });
      assert.deepEqual(both.json.outputs.map((o: { name: string }) => o.name).sort(), ["OUTPUT0", "OUTPUT1"]);
    });

    it("accepts request and input parameters it does not act on", async () => {
      const res = await infer("simple", {
        id: "p",
        parameters: { custom_flag: true, note: "x", n: 3 },
        inputs: inputs.map((t) => ({ ...t, parameters: { anything: "goes" } })),
      });
      assert.equal(res.status, 200, res.body.toString());
    });

    it("accepts a versioned infer URL", async () => {
      const res = await infer("simple/versions/1", { inputs });
      assert.equal(res.status, 200);
      assert.equal(res.json.model_version, "1");
    });

    it("batches several items in one request and keeps them apart", async () => {
      const res = await infer("simple", {
        inputs: [
          { name: "INPUT0", shape: [3, 16], datatype: "INT32", data: [Array(16).fill(1), Array(16).fill(2), Array(16).fill(3)] },
          { name: "INPUT1", shape: [3, 16], datatype: "INT32", data: Array(48).fill(1) },
        ],
        outputs: [{ name: "OUTPUT0" }],
      });
      assert.equal(res.status, 200);
      assert.deepEqual(res.json.outputs[0].shape, [3, 16]);
      assert.deepEqual(res.json.outputs[0].data, [...Array(16).fill(2), ...Array(16).fill(3), ...Array(16).fill(4)]);
    });

    it("serves the BYTES example model", async () => {
      const res = await infer("simple_string", { inputs: [{ name: "INPUT0", shape: [1, 2], datatype: "BYTES", data: ["a", "bc"] }] });
      assert.equal(res.status, 200);
      assert.deepEqual(res.json.outputs[0].data, ["a", "bc"]);
    });
  });

  describe("classification extension", () => {
    // Two deterministic 3x32x32 images.
    const image = (seed: number) => Float32Array.from({ length: 3 * 32 * 32 }, (_, i) => Math.sin(i * 0.37 + seed) * Math.cos(i * 0.011 * seed));
    const batch = new Float32Array(2 * 3 * 32 * 32);
    batch.set(image(1), 0);
    batch.set(image(7), 3 * 32 * 32);
    const labels = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];
    const header = (outputs: unknown[]) => ({
      inputs: [{ name: "INPUT", shape: [2, 3, 32, 32], datatype: "FP32", parameters: { binary_data_size: batch.byteLength } }],
      outputs,
    });
    let probabilities: number[][];

    before(async () => {
      const res = await postBinary(`${s.url}/v2/models/image_classifier/infer`, header([{ name: "OUTPUT", parameters: { binary_data: true } }]), [bytesOf(batch)]);
      assert.equal(res.status, 200, res.body.toString());
      const raw = splitBinaryResponse(res).binary.get("OUTPUT")!;
      const f = new Float32Array(new Uint8Array(raw).buffer);
      probabilities = [Array.from(f.subarray(0, 10)), Array.from(f.subarray(10, 20))];
    });

    it("returns the top K per batch item as 'value:index:label' BYTES with shape [batch, K]", async () => {
      const res = await postBinary(`${s.url}/v2/models/image_classifier/infer`, header([{ name: "OUTPUT", parameters: { classification: 3 } }]), [bytesOf(batch)]);
      assert.equal(res.status, 200, res.body.toString());
      const out = res.json.outputs[0];
      assert.equal(out.name, "OUTPUT");
      assert.equal(out.datatype, "BYTES");
      assert.deepEqual(out.shape, [2, 3]);
      const expected = probabilities.flatMap((p) =>
        p
          .map((v, i) => ({ v, i }))
          .sort((x, y) => y.v - x.v)
          .slice(0, 3)
          .map(({ v, i }) => `${v.toFixed(6)}:${i}:${labels[i]}`),
      );
      assert.deepEqual(out.data, expected);
      for (const e of out.data as string[]) assert.match(e, /^\d\.\d{6}:\d:[a-z]+$/);
      // Different images, different rankings: the batch items were not mixed up.
      assert.notDeepEqual(out.data.slice(0, 3), out.data.slice(3, 6));
    });

    it("returns classification results as binary BYTES when asked", async () => {
      const res = await postBinary(`${s.url}/v2/models/image_classifier/infer`, header([{ name: "OUTPUT", parameters: { classification: 2, binary_data: true } }]), [bytesOf(batch)]);
      assert.equal(res.status, 200);
      const { header: h, binary } = splitBinaryResponse(res);
      assert.equal(h.outputs[0].datatype, "BYTES");
      assert.deepEqual(h.outputs[0].shape, [2, 2]);
      const raw = binary.get("OUTPUT")!;
      const strings: string[] = [];
      for (let off = 0; off < raw.byteLength; ) {
        const len = raw.readUInt32LE(off);
        strings.push(raw.toString("utf8", off + 4, off + 4 + len));
        off += 4 + len;
      }
      assert.equal(strings.length, 4);
      for (const e of strings) assert.match(e, /^\d\.\d{6}:\d:[a-z]+$/);
    });

    it("leaves the label out when the output has no label_filename", async () => {
      const res = await infer("identity_fp32", {
        inputs: [{ name: "INPUT0", shape: [1, 4], datatype: "FP32", data: [0.5, 2, -1, 1.25] }],
        outputs: [{ name: "OUTPUT0", parameters: { classification: 2 } }],
      });
      assert.equal(res.status, 200, res.body.toString());
      assert.deepEqual(res.json.outputs[0], { name: "OUTPUT0", datatype: "BYTES", shape: [1, 2], data: ["2.000000:1", "1.250000:3"] });
    });

    it("formats integer outputs without decimals", async () => {
      const res = await infer("identity_int32", {
        inputs: [{ name: "INPUT0", shape: [1, 3], datatype: "INT32", data: [5, -7, 9] }],
        outputs: [{ name: "OUTPUT0", parameters: { classification: 2 } }],
      });
      assert.equal(res.status, 200, res.body.toString());
      assert.deepEqual(res.json.outputs[0].data, ["9:2", "5:0"]);
    });
  });

  describe("compression", () => {
    const body = {
      inputs: [
        { name: "INPUT0", shape: [1, 16], datatype: "INT32", data: Array.from({ length: 16 }, (_, i) => i) },
        { name: "INPUT1", shape: [1, 16], datatype: "INT32", data: Array.from({ length: 16 }, () => 10) },
      ],
    };
    const sums = Array.from({ length: 16 }, (_, i) => i + 10);

    for (const [encoding, compress] of [["gzip", zlib.gzipSync], ["deflate", zlib.deflateSync]] as const) {
      it(`accepts a ${encoding} request body (Content-Encoding: ${encoding})`, async () => {
        const res = await infer("simple", compress(Buffer.from(JSON.stringify(body))), { "Content-Encoding": encoding });
        assert.equal(res.status, 200, res.body.toString());
        assert.equal(res.headers["content-encoding"], undefined);
        assert.deepEqual(res.json.outputs[0].data, sums);
      });

      it(`compresses the response with ${encoding} when Accept-Encoding asks`, async () => {
        const res = await infer("simple", body, { "Accept-Encoding": encoding });
        assert.equal(res.status, 200);
        assert.equal(res.headers["content-encoding"], encoding);
        const plain = encoding === "gzip" ? zlib.gunzipSync(res.body) : zlib.inflateSync(res.body);
        assert.equal(Number(res.headers["content-length"]), res.body.byteLength);
        assert.deepEqual(JSON.parse(plain.toString()).outputs[0].data, sums);
      });

      it(`round-trips a binary request and response compressed with ${encoding}`, async () => {
        const x = Float32Array.from({ length: 64 }, (_, i) => i / 4);
        const head = Buffer.from(JSON.stringify({
          parameters: { binary_data_output: true },
          inputs: [{ name: "INPUT0", shape: [1, 64], datatype: "FP32", parameters: { binary_data_size: 256 } }],
        }));
        const res = await httpRequest(`${s.url}/v2/models/identity_fp32/infer`, {
          method: "POST",
          headers: {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": head.byteLength,
            "Content-Encoding": encoding,
            "Accept-Encoding": encoding,
          },
          body: compress(Buffer.concat([head, bytesOf(x)])),
        });
        assert.equal(res.status, 200, res.body.toString());
        assert.equal(res.headers["content-encoding"], encoding);
        const plain = encoding === "gzip" ? zlib.gunzipSync(res.body) : zlib.inflateSync(res.body);
        const { header, binary } = splitBinaryResponse({ ...res, body: plain, headers: { ...res.headers, "content-encoding": undefined } });
        assert.equal(header.outputs[0].parameters.binary_data_size, 256);
        assert.deepEqual(binary.get("OUTPUT0"), bytesOf(x));
      });
    }

    it("answers uncompressed when Accept-Encoding names nothing it supports", async () => {
      const res = await infer("simple", body, { "Accept-Encoding": "br, identity" });
      assert.equal(res.status, 200);
      assert.equal(res.headers["content-encoding"], undefined);
      assert.deepEqual(res.json.outputs[0].data, sums);
    });

    it("refuses a body that does not decompress, and keeps serving", async () => {
      const res = await infer("simple", Buffer.from("this is not gzip"), { "Content-Encoding": "gzip" });
      assert.equal(res.status, 400);
      assert.ok(typeof res.json.error === "string" && res.json.error.length > 0);
      const ok = await infer("simple", body);
      assert.equal(ok.status, 200);
    });
  });
});
