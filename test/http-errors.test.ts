/**
 * Bad requests over real HTTP: each gets Triton's status and a message that
 * names the model and the tensor, never a 500, and the server keeps serving.
 */
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import zlib from "node:zlib";
import { after, before, describe, it } from "node:test";
import { EXAMPLES, FIXTURES, bytesOf, httpRequest, postBinary, startServerWithHttp, tempRepository, type RawResponse, type TestServer } from "./helpers.js";

const MAX_INPUT = 1024 * 1024;
const range = (n: number, f: (i: number) => number = (i) => i) => Array.from({ length: n }, (_, i) => f(i));
const input = (name: string, shape: number[], data: unknown, datatype = "INT32") => ({ name, shape, datatype, data });
const good = () => ({ inputs: [input("INPUT0", [1, 16], range(16)), input("INPUT1", [1, 16], range(16, () => 1))] });

describe("HTTP error handling", () => {
  let s: TestServer;
  let extra: string;
  const infer = (model: string, body: unknown, headers: Record<string, string | number> = {}): Promise<RawResponse> =>
    httpRequest(`${s.url}/v2/models/${model}/infer`, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...headers },
      body: typeof body === "string" || Buffer.isBuffer(body) ? (body as string | Buffer) : JSON.stringify(body),
    });
  /** Asserts a JSON error with this status and returns its message. */
  const error = (res: RawResponse, status: number): string => {
    assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.body.toString()}`);
    assert.match(String(res.headers["content-type"]), /^application\/json/);
    assert.deepEqual(Object.keys(res.json), ["error"]);
    assert.equal(typeof res.json.error, "string");
    return res.json.error as string;
  };
  const stillServing = async () => {
    const res = await infer("simple", good());
    assert.equal(res.status, 200, res.body.toString());
    assert.deepEqual(res.json.outputs[0].data, range(16, (i) => i + 1));
  };

  before(async () => {
    extra = await tempRepository({ add_sub_fp32: path.join(FIXTURES, "add_sub_fp32") });
    s = await startServerWithHttp({ modelRepository: [EXAMPLES, extra] }, { maxInputSize: MAX_INPUT });
  });
  after(async () => {
    await s?.close();
    if (extra) await fs.rm(extra, { recursive: true, force: true });
  });

  describe("tensor problems (400, message names model and tensor)", () => {
    it("wrong shape", async () => {
      const res = await infer("simple", { inputs: [input("INPUT0", [1, 15], range(15)), input("INPUT1", [1, 16], range(16))] });
      const msg = error(res, 400);
      assert.ok(
        msg.startsWith("[request id: <id_unknown>] unexpected shape for input 'INPUT0' for model 'simple'. Expected [-1,16], got [1,15]."),
        msg,
      );
      await stillServing();
    });

    it("wrong shape on a model without a batch dimension", async () => {
      const res = await infer("add_sub_fp32", { inputs: [input("INPUT0", [1, 4], [1, 2, 3, 4], "FP32"), input("INPUT1", [4], [1, 2, 3, 4], "FP32")] });
      const msg = error(res, 400);
      assert.match(msg, /unexpected shape for input 'INPUT0' for model 'add_sub_fp32'\. Expected \[4\], got \[1,4\]/);
    });

    it("a zero batch dimension", async () => {
      const res = await infer("simple", { inputs: [input("INPUT0", [0, 16], []), input("INPUT1", [0, 16], [])] });
      const msg = error(res, 400);
      assert.match(msg, /'INPUT0'.*'simple'/);
    });

    it("wrong datatype", async () => {
      const res = await infer("simple", { id: "dt", inputs: [input("INPUT0", [1, 16], range(16), "FP32"), input("INPUT1", [1, 16], range(16))] });
      const msg = error(res, 400);
      assert.equal(msg, "[request id: dt] inference input 'INPUT0' data-type is 'FP32', but model 'simple' expects 'INT32'");
    });

    it("a datatype that does not exist", async () => {
      const res = await infer("simple", { inputs: [input("INPUT0", [1, 16], range(16), "INT33"), input("INPUT1", [1, 16], range(16))] });
      const msg = error(res, 400);
      assert.match(msg, /'INPUT0'.*'simple'.*INT33|INT33.*'INPUT0'.*'simple'/);
    });

    it("JSON data whose element count does not match the shape", async () => {
      const res = await infer("simple", { inputs: [input("INPUT0", [1, 16], range(15)), input("INPUT1", [1, 16], range(16))] });
      const msg = error(res, 400);
      assert.match(msg, /'INPUT0'/);
      assert.match(msg, /'simple'/);
    });

    it("JSON values that do not fit the datatype", async () => {
      for (const bad of [range(16, () => 1.5), [...range(15), "7"], [...range(15), 2 ** 31], [...range(15), null], [...range(15), true]]) {
        const res = await infer("simple", { inputs: [input("INPUT0", [1, 16], bad), input("INPUT1", [1, 16], range(16))] });
        const msg = error(res, 400);
        assert.match(msg, /'INPUT0'.*'simple'/, JSON.stringify(bad));
      }
      const strings = await infer("simple_string", { inputs: [input("INPUT0", [1, 2], ["a", 5], "BYTES")] });
      assert.match(error(strings, 400), /'INPUT0'.*'simple_string'/);
    });

    it("binary byte-size mismatch", async () => {
      const res = await postBinary(`${s.url}/v2/models/simple/infer`, {
        inputs: [
          { name: "INPUT0", shape: [1, 16], datatype: "INT32", parameters: { binary_data_size: 60 } },
          { name: "INPUT1", shape: [1, 16], datatype: "INT32", parameters: { binary_data_size: 64 } },
        ],
      }, [Buffer.alloc(60), Buffer.alloc(64)]);
      const msg = error(res, 400);
      assert.equal(msg, "[request id: <id_unknown>] input byte size mismatch for input 'INPUT0' for model 'simple'. Expected 64, got 60");
      await stillServing();
    });

    it("malformed BYTES elements in binary data", async () => {
      // A length prefix that claims more bytes than follow.
      const data = Buffer.alloc(8);
      data.writeUInt32LE(100, 0);
      const res = await postBinary(`${s.url}/v2/models/simple_string/infer`, {
        inputs: [{ name: "INPUT0", shape: [1, 1], datatype: "BYTES", parameters: { binary_data_size: 8 } }],
      }, [data]);
      const msg = error(res, 400);
      assert.match(msg, /'INPUT0'.*'simple_string'/);
    });

    it("missing input", async () => {
      const res = await infer("simple", { inputs: [input("INPUT0", [1, 16], range(16))] });
      const msg = error(res, 400);
      assert.match(msg, /model 'simple'/);
      assert.match(msg, /missing required input\(s\) \['INPUT1'\]/);
    });

    it("unknown input", async () => {
      const res = await infer("simple", { inputs: [...good().inputs, input("INPUT9", [1, 16], range(16))] });
      const msg = error(res, 400);
      assert.equal(msg, "[request id: <id_unknown>] unexpected inference input 'INPUT9' for model 'simple'");
    });

    it("the same input twice", async () => {
      const res = await infer("simple", { inputs: [...good().inputs, input("INPUT0", [1, 16], range(16))] });
      assert.match(error(res, 400), /'INPUT0'.*'simple'/);
    });

    it("unknown output", async () => {
      const res = await infer("simple", { ...good(), outputs: [{ name: "OUTPUT7" }] });
      const msg = error(res, 400);
      assert.equal(msg, "[request id: <id_unknown>] unexpected inference output 'OUTPUT7' for model 'simple'");
      await stillServing();
    });

    it("batch larger than max_batch_size", async () => {
      const res = await infer("simple", { inputs: [input("INPUT0", [9, 16], range(144)), input("INPUT1", [9, 16], range(144))] });
      const msg = error(res, 400);
      assert.equal(msg, "[request id: <id_unknown>] inference request batch-size must be <= 8 for 'simple'");
      await stillServing();
    });

    it("inputs whose batch sizes disagree", async () => {
      const res = await infer("simple", { inputs: [input("INPUT0", [2, 16], range(32)), input("INPUT1", [1, 16], range(16))] });
      assert.match(error(res, 400), /'simple'/);
    });
  });

  describe("body problems (400)", () => {
    it("malformed JSON", async () => {
      for (const body of ['{"inputs": [', "not json", "", "[1,2,3]", "null", '{"inputs": 5}']) {
        const res = await infer("simple", body);
        const msg = error(res, 400);
        assert.ok(msg.length > 0, body);
      }
      const res = await infer("simple", '{"inputs": [');
      assert.match(error(res, 400), /failed to parse the request JSON buffer/);
      await stillServing();
    });

    it("an input without name, shape or data", async () => {
      for (const t of [{ shape: [1, 16], datatype: "INT32", data: range(16) }, { name: "INPUT0", datatype: "INT32", data: range(16) }, { name: "INPUT0", shape: [1, 16], datatype: "INT32" }, { name: "INPUT0", shape: [1, -16], datatype: "INT32", data: range(16) }]) {
        const res = await infer("simple", { inputs: [t, good().inputs[1]] });
        error(res, 400);
      }
    });

    it("truncated binary body", async () => {
      const head = Buffer.from(JSON.stringify({
        inputs: [
          { name: "INPUT0", shape: [1, 16], datatype: "INT32", parameters: { binary_data_size: 64 } },
          { name: "INPUT1", shape: [1, 16], datatype: "INT32", parameters: { binary_data_size: 64 } },
        ],
      }));
      const res = await httpRequest(`${s.url}/v2/models/simple/infer`, {
        method: "POST",
        headers: { "Inference-Header-Content-Length": head.byteLength, "Content-Type": "application/octet-stream" },
        body: Buffer.concat([head, Buffer.alloc(64 + 32)]),
      });
      const msg = error(res, 400);
      assert.match(msg, /'INPUT1'/);
      assert.match(msg, /'simple'/);
      await stillServing();
    });

    it("Inference-Header-Content-Length beyond the body, or not a number", async () => {
      const body = Buffer.from(JSON.stringify(good()));
      const long = await httpRequest(`${s.url}/v2/models/simple/infer`, {
        method: "POST",
        headers: { "Inference-Header-Content-Length": body.byteLength + 10 },
        body,
      });
      assert.match(error(long, 400), /'simple'/);
      const nan = await httpRequest(`${s.url}/v2/models/simple/infer`, {
        method: "POST",
        headers: { "Inference-Header-Content-Length": "abc" },
        body,
      });
      error(nan, 400);
    });

    it("binary bytes that no input claims", async () => {
      const res = await postBinary(`${s.url}/v2/models/simple/infer`, good(), [Buffer.alloc(8)]);
      assert.match(error(res, 400), /'simple'/);
    });
  });

  describe("model lookup", () => {
    it("unknown model → 400 with Triton's exact message", async () => {
      const res = await infer("no_such_model", good());
      assert.equal(error(res, 400), "Request for unknown model: 'no_such_model' is not found");
    });

    it("unknown version → 404", async () => {
      const res = await infer("simple/versions/7", good());
      assert.equal(error(res, 404), "Request for unknown model: 'simple' version 7 is not found");
      await stillServing();
    });
  });

  describe("request size limit (--http-max-input-size)", () => {
    it("refuses a body declared larger than the limit", async () => {
      const big = JSON.stringify({ ...good(), id: "x".repeat(MAX_INPUT) });
      const res = await infer("simple", big);
      const msg = error(res, 400);
      assert.match(msg, new RegExp(`${MAX_INPUT}`));
      assert.match(msg, /--http-max-input-size/);
      await stillServing();
    });

    it("refuses a chunked body once it passes the limit", async () => {
      const res = await httpRequest(`${s.url}/v2/models/simple/infer`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "Transfer-Encoding": "chunked" },
        body: Buffer.alloc(MAX_INPUT + 4096, 0x20),
      });
      assert.match(error(res, 400), /--http-max-input-size/);
      await stillServing();
    });

    it("applies the limit after decompression too", async () => {
      const inflated = Buffer.concat([Buffer.from(JSON.stringify(good()).slice(0, -1) + ',"pad":"'), Buffer.alloc(MAX_INPUT * 2, 0x61), Buffer.from('"}')]);
      const gz = zlib.gzipSync(inflated);
      assert.ok(gz.byteLength < MAX_INPUT);
      const res = await infer("simple", gz, { "Content-Encoding": "gzip" });
      assert.match(error(res, 400), /--http-max-input-size/);
      await stillServing();
    });

    it("accepts a body just under the limit", async () => {
      const x = new Float32Array(8 * 16_000); // 512 KB of binary data
      const res = await postBinary(`${s.url}/v2/models/identity_fp32/infer`, {
        inputs: [{ name: "INPUT0", shape: [8, 16_000], datatype: "FP32", parameters: { binary_data_size: x.byteLength } }],
        outputs: [{ name: "OUTPUT0", parameters: { binary_data: true } }],
      }, [bytesOf(x)]);
      assert.equal(res.status, 200, res.body.toString().slice(0, 300));
    });
  });

  describe("resilience", () => {
    it("keeps serving good requests while bad ones arrive concurrently", async () => {
      const bad = [
        infer("simple", "{"),
        infer("simple", { inputs: [input("INPUT0", [1, 3], [1, 2, 3])] }),
        infer("nope", good()),
        infer("simple", { inputs: [input("INPUT0", [9, 16], range(144)), input("INPUT1", [9, 16], range(144))] }),
      ];
      const goodOnes = range(8).map(() => infer("simple", good()));
      const results = await Promise.all([...bad, ...goodOnes]);
      for (const r of results.slice(0, bad.length)) assert.ok(r.status === 400, `${r.status}`);
      for (const r of results.slice(bad.length)) assert.equal(r.status, 200);
      const ready = await httpRequest(`${s.url}/v2/health/ready`);
      assert.equal(ready.status, 200);
    });

    it("survives a client that disconnects in the middle of its body", async () => {
      const { port } = new URL(s.url);
      for (let i = 0; i < 3; i++) {
        await new Promise<void>((resolve, reject) => {
          const sock = net.connect(Number(port), "127.0.0.1", () => {
            sock.write(
              "POST /v2/models/simple/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n" +
                '{"inputs": [',
            );
            setTimeout(() => {
              sock.destroy();
              resolve();
            }, 20);
          });
          sock.on("error", reject);
        });
      }
      await stillServing();
    });

    it("never answers a client error with 500", async () => {
      const bodies: unknown[] = [
        { inputs: null },
        { inputs: [null] },
        { inputs: [{ name: 5 }] },
        { inputs: good().inputs, outputs: [null] },
        { inputs: good().inputs, outputs: "OUTPUT0" },
        { inputs: good().inputs, outputs: [{ name: "OUTPUT0", parameters: { classification: "three" } }] },
        { inputs: good().inputs, outputs: [{ name: "OUTPUT0", parameters: { classification: -1 } }] },
        { inputs: good().inputs, parameters: [1] },
        { inputs: good().inputs, parameters: { nested: { deep: true } } },
        { id: 5, inputs: good().inputs },
        { inputs: good().inputs.map((t) => ({ ...t, parameters: { binary_data_size: -1 } })) },
        { inputs: good().inputs.map((t) => ({ ...t, data: { not: "an array" } })) },
      ];
      for (const b of bodies) {
        const res = await infer("simple", b);
        assert.ok(res.status >= 400 && res.status < 500, `${JSON.stringify(b)} → ${res.status} ${res.body.toString()}`);
        assert.equal(typeof res.json?.error, "string");
      }
      await stillServing();
    });
  });
});
