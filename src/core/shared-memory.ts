import fs from "node:fs";
import path from "node:path";
import { TritonError, invalidArg, notFound, unsupported } from "./errors.js";
import type { InferenceRequest, InferenceResponse } from "./requests/inference.js";
import type { ParameterValue, Parameters, Tensor } from "./tensors/tensor.js";

/**
 * Triton's system shared memory extension (`shared_memory_manager.cc`).
 *
 * A client creates a POSIX shared memory object (`shm_open("/name")`, which
 * on Linux is the file `/dev/shm/name`), registers a byte range of it as a
 * named region, and then names the region in an input's or a requested
 * output's parameters (`shared_memory_region`, `shared_memory_offset`,
 * `shared_memory_byte_size`) instead of sending the tensor's bytes.
 *
 * Node has no `mmap`, so a region keeps the object open: an input is read
 * from the file at (region offset + offset) into one Buffer before the
 * request is validated, and an output is written into the file after
 * inference. Both go through the kernel's page cache, which is the memory the
 * client has mapped, so the client sees the data without any other copy.
 *
 * Regions are server-wide: HTTP, gRPC and in-process callers share one
 * registry. A region unregistered while requests use it stays (listed and
 * usable, as in Triton) until the last of them finishes; its descriptor is
 * closed then, so a request never reads a closed or reused descriptor.
 */

/** One entry of the status answer, in Triton's JSON key order. */
export interface SystemSharedMemoryRegionStatus {
  name: string;
  key: string;
  offset: number;
  byte_size: number;
}

/** Keys that Triton reserves for its Python backend's own regions. */
export const RESERVED_SHM_KEY_PREFIX = "triton_python_backend_shm_region_";

/** The request parameters that put a tensor in shared memory. */
export const SHM_REGION = "shared_memory_region";
export const SHM_OFFSET = "shared_memory_offset";
export const SHM_BYTE_SIZE = "shared_memory_byte_size";
const SHM_KEYS = [SHM_REGION, SHM_OFFSET, SHM_BYTE_SIZE];

const UINT64_MAX = 2n ** 64n - 1n;
/** Below this many bytes a read or write is done synchronously (cheaper than a thread-pool hop). */
const SYNC_IO_BYTES = 64 * 1024;

export interface SharedMemoryOptions {
  /**
   * `--allow-client-shm` (Triton's default: false). Off, registering a
   * region and naming one in a request fail; status and unregister still
   * answer (there is nothing to list or remove), so clients that unregister
   * everything at start-up keep working.
   */
  allowClientShm?: boolean;
  /** `--client-shm-key-prefix`: clients may register only keys whose name starts with it (default: any). */
  keyPrefix?: string;
  /** Where POSIX shared memory objects live (Linux: /dev/shm). */
  directory?: string;
}

interface Region {
  readonly name: string;
  readonly key: string;
  readonly offset: number;
  readonly byteSize: number;
  readonly fd: number;
  /** Requests that hold this region. */
  users: number;
  /** Unregistered while in use: removed when the last user releases it. */
  awaitingUnregister: boolean;
}

/** Where one tensor of a request lives in shared memory. */
interface ShmRef {
  region: Region;
  /** Offset within the region. */
  offset: number;
  byteSize: number;
}

/** True when an output of a response was written to shared memory (it carries no data). */
export function isSharedMemoryTensor(t: Pick<Tensor, "parameters">): boolean {
  return t.parameters !== undefined && t.parameters[SHM_REGION] !== undefined;
}

/** The process-wide registry of system shared memory regions. */
export class SharedMemoryManager {
  readonly allowClientShm: boolean;
  private readonly directory: string;
  private readonly keyPrefix: string;
  private readonly regions = new Map<string, Region>();

  constructor(options: SharedMemoryOptions = {}) {
    this.allowClientShm = options.allowClientShm ?? false;
    this.keyPrefix = (options.keyPrefix ?? "").replace(/^\/+/, "");
    this.directory = options.directory ?? "/dev/shm";
  }

  /**
   * `SystemSharedMemoryRegister`: opens the object named by `key` and
   * registers [offset, offset + byteSize) of it as region `name`.
   */
  register(name: string, key: string, offset: number | bigint = 0, byteSize: number | bigint = 0): void {
    if (!this.allowClientShm) {
      throw unsupported(
        `failed to register system shared memory region '${name}': system shared memory is not supported unless the server is started with --allow-client-shm=true`,
      );
    }
    if (typeof name !== "string" || name === "") throw invalidArg("'region name' is necessary to register system shared memory region");
    if (typeof key !== "string") throw invalidArg(`failed to register shared memory region '${name}': 'key' must be a string`);
    const objectName = key.replace(/^\/+/, "");
    if (objectName.startsWith(RESERVED_SHM_KEY_PREFIX)) {
      throw invalidArg(
        `cannot register shared memory region '${name}' with key '${key}' as the key contains the reserved prefix '${RESERVED_SHM_KEY_PREFIX}'`,
      );
    }
    if (!objectName.startsWith(this.keyPrefix)) {
      throw invalidArg(`cannot register shared memory region '${name}' with key '${key}': this server accepts only keys that start with '/${this.keyPrefix}' (--client-shm-key-prefix)`);
    }
    if (this.regions.has(name)) throw new TritonError("ALREADY_EXISTS", `shared memory region '${name}' already in manager`);
    const off = toSafeInteger(offset);
    const size = toSafeInteger(byteSize);
    if (off === undefined || size === undefined) {
      throw invalidArg(`failed to register shared memory region '${name}': invalid args: 'offset' and 'byte_size' must be non-negative integers`);
    }
    // shm_open's rule: one name after the leading slashes, no '/' inside. It
    // also keeps the path inside the shared memory directory.
    if (objectName === "" || objectName.includes("/") || objectName === "." || objectName === ".." || objectName.includes("\0")) {
      throw invalidArg(`Unable to open shared memory region: '${key}' (a POSIX shared memory key is '/' followed by a name without '/')`);
    }
    const fd = openObject(path.join(this.directory, objectName), key);
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw invalidArg(`Unable to open shared memory region: '${key}' (not a shared memory object)`);
      if (size === 0 || off + size > st.size) {
        throw invalidArg(
          `failed to register shared memory region '${name}': invalid args: offset ${off} + byte_size ${size} ` +
            (size === 0 ? "is an empty region" : `exceeds the size of '${key}' (${st.size} bytes)`),
        );
      }
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    // Two names over the same bytes would let one request's outputs land in another's inputs.
    const overlap = [...this.regions.values()].find((r) => r.key.replace(/^\/+/, "") === objectName && off < r.offset + r.byteSize && r.offset < off + size);
    if (overlap) {
      fs.closeSync(fd);
      throw new TritonError(
        "ALREADY_EXISTS",
        `failed to register shared memory region '${name}': bytes ${off}..${off + size} of '${key}' overlap region '${overlap.name}' (${overlap.offset}..${overlap.offset + overlap.byteSize}); a range of shared memory can be registered once`,
      );
    }
    this.regions.set(name, { name, key, offset: off, byteSize: size, fd, users: 0, awaitingUnregister: false });
  }

  /** `SystemSharedMemoryStatus`: every region (sorted by name, as Triton's map), or the named one. */
  status(name?: string): SystemSharedMemoryRegionStatus[] {
    const view = (r: Region): SystemSharedMemoryRegionStatus => ({ name: r.name, key: r.key, offset: r.offset, byte_size: r.byteSize });
    if (name !== undefined && name !== "") {
      const r = this.regions.get(name);
      if (!r) throw notFound(`Unable to find system shared memory region: '${name}'`);
      return [view(r)];
    }
    return [...this.regions.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map(view);
  }

  /**
   * `SystemSharedMemoryUnregister`: removes the named region, or every region
   * when `name` is empty. An unknown name is not an error (Triton's rule). A
   * region in use is removed when its last request finishes.
   */
  unregister(name?: string): void {
    const names = name !== undefined && name !== "" ? [name] : [...this.regions.keys()];
    for (const n of names) {
      const r = this.regions.get(n);
      if (!r) continue;
      if (r.users > 0) r.awaitingUnregister = true;
      else this.remove(r);
    }
  }

  /**
   * CUDA shared memory status. Tritium runs without GPUs, so no CUDA region
   * can exist; answers are those of a Triton built without GPU support.
   * Region names share one namespace with system regions (Triton's rule).
   */
  cudaStatus(name?: string): { name: string; device_id: number; byte_size: number }[] {
    if (name === undefined || name === "") return [];
    if (this.regions.has(name)) throw notFound(`The region named '${name}' is registered as system shared memory, not CUDA shared memory`);
    throw notFound(`Unable to find cuda shared memory region: '${name}'`);
  }

  /** CUDA shared memory registration: refused without GPUs (Triton's message). */
  cudaRegister(name: string): never {
    if (name === undefined || name === "") throw invalidArg("'region name' is necessary to register cuda shared memory region");
    throw invalidArg(`failed to register CUDA shared memory region: '${name}', GPUs not supported`);
  }

  /**
   * Server shutdown: unregisters every region. One still held by a request
   * that outlived the drain is closed when that request lets go, so its
   * descriptor is never closed (and perhaps reused) under it.
   */
  close(): void {
    this.unregister();
  }

  /**
   * Runs `infer` with the request's shared-memory inputs read into memory,
   * then writes its shared-memory outputs. Requests that name no region pass
   * straight through.
   */
  async run(req: InferenceRequest, infer: (req: InferenceRequest) => Promise<InferenceResponse>): Promise<InferenceResponse> {
    if (!usesSharedMemory(req)) return infer(req);
    const held: Region[] = [];
    try {
      const inputs = req.inputs.map((t) => {
        const inShm = t.parameters !== undefined && t.parameters[SHM_REGION] !== undefined;
        return { t, ref: inShm ? this.resolve(req, t.parameters!, `input '${t.name}'`, held) : undefined };
      });
      const outputs = new Map<string, ShmRef>();
      for (const o of req.outputs ?? []) {
        if (!o.parameters || o.parameters[SHM_REGION] === undefined) continue;
        if (o.classification !== undefined && o.classification !== 0) {
          throw invalidArg("Output can't set both 'shared_memory_region' and 'classification'");
        }
        outputs.set(o.name, this.resolve(req, o.parameters, `output '${o.name}'`, held));
      }
      // allSettled, never all: the regions are released (and maybe their files
      // closed) only once no read or write on them is still running.
      const read = settledOrThrow(
        await Promise.allSettled(
          inputs.map(async ({ t, ref }) => (ref ? { ...t, data: await readRegion(ref), parameters: withoutShmKeys(t.parameters) } : t)),
        ),
      );
      const response = await infer({ ...req, inputs: read });
      if (outputs.size === 0) return response;
      // Every size is checked before any write starts.
      for (const t of response.outputs) {
        const ref = outputs.get(t.name);
        if (ref && t.data.byteLength > ref.byteSize) {
          throw invalidArg(
            `shared memory size specified with the request for output '${t.name}' (${ref.byteSize} bytes) should be at least ${t.data.byteLength} bytes to hold the results`,
          );
        }
      }
      const written = settledOrThrow(await Promise.allSettled(
        response.outputs.map(async (t) => {
          const ref = outputs.get(t.name);
          if (!ref) return t;
          await writeRegion(ref, t.data, t.name);
          const parameters: Parameters = { ...withoutShmKeys(t.parameters), [SHM_REGION]: ref.region.name, [SHM_BYTE_SIZE]: t.data.byteLength };
          if (ref.offset !== 0) parameters[SHM_OFFSET] = ref.offset;
          return { ...t, data: new Uint8Array(0), parameters };
        }),
      ));
      return { ...response, outputs: written };
    } finally {
      for (const r of held) this.release(r);
    }
  }

  /** Checks one tensor's shared memory parameters against its region (Triton's GetMemoryInfo) and holds the region. */
  private resolve(req: InferenceRequest, params: Parameters, what: string, held: Region[]): ShmRef {
    const where = `${what} for model '${req.model_name}'`;
    const regionName = params[SHM_REGION];
    if (!this.allowClientShm) {
      throw unsupported(
        `${where} names shared memory region '${String(regionName)}', but shared memory is not supported unless the server is started with --allow-client-shm=true`,
      );
    }
    if (typeof regionName !== "string") throw invalidArg(`Unable to parse '${SHM_REGION}' of ${where}: expected a string`);
    const offset = params[SHM_OFFSET] === undefined ? 0n : toUint64(params[SHM_OFFSET]);
    if (offset === undefined) throw invalidArg(`Unable to parse '${SHM_OFFSET}' of ${where}: expected a non-negative integer`);
    if (params[SHM_BYTE_SIZE] === undefined) throw invalidArg(`${where} sets '${SHM_REGION}' but not '${SHM_BYTE_SIZE}'; both are required`);
    const byteSize = toUint64(params[SHM_BYTE_SIZE]);
    if (byteSize === undefined) throw invalidArg(`Unable to parse '${SHM_BYTE_SIZE}' of ${where}: expected a non-negative integer`);
    const region = this.regions.get(regionName);
    if (!region) throw notFound(`Unable to find shared memory region: '${regionName}'`);
    if (offset >= BigInt(region.byteSize)) throw invalidArg(`Invalid offset for shared memory region: '${regionName}'`);
    if (byteSize > UINT64_MAX - offset) {
      throw invalidArg(`Integer overflow detected: byte_size (${byteSize}) + offset (${offset}) exceeds maximum value (${UINT64_MAX}) for region '${regionName}'`);
    }
    if (offset + byteSize > BigInt(region.byteSize)) throw invalidArg(`Invalid offset + byte size for shared memory region: '${regionName}'`);
    region.users++;
    held.push(region);
    return { region, offset: Number(offset), byteSize: Number(byteSize) };
  }

  private release(r: Region): void {
    r.users--;
    if (r.users === 0 && r.awaitingUnregister) this.remove(r);
  }

  private remove(r: Region): void {
    if (this.regions.get(r.name) === r) this.regions.delete(r.name);
    try {
      fs.closeSync(r.fd);
    } catch {
      // Already closed: nothing holds it any more.
    }
  }
}

/**
 * The body of `POST /v2/systemsharedmemory/region/{r}/register`:
 * `{"key": string, "offset"?: number, "byte_size": number}` (Triton's checks and messages).
 */
export function registerRequestFromJson(body: Record<string, unknown> | undefined): { key: string; offset: number; byteSize: number } {
  const b = body ?? {};
  if (b.key === undefined) throw invalidArg("Shared memory register request has no 'key' field");
  if (typeof b.key !== "string") throw invalidArg("Shared memory register request: 'key' must be a string");
  const offset = b.offset === undefined ? 0 : b.offset;
  if (typeof offset !== "number" || !Number.isInteger(offset) || offset < 0) {
    throw invalidArg("Shared memory register request: 'offset' must be a non-negative integer");
  }
  if (b.byte_size === undefined) throw invalidArg("Shared memory register request has no 'byte_size' field");
  if (typeof b.byte_size !== "number" || !Number.isInteger(b.byte_size) || b.byte_size < 0) {
    throw invalidArg("Shared memory register request: 'byte_size' must be a non-negative integer");
  }
  return { key: b.key, offset, byteSize: b.byte_size };
}

function usesSharedMemory(req: InferenceRequest): boolean {
  for (const t of req.inputs) if (t.parameters && t.parameters[SHM_REGION] !== undefined) return true;
  for (const o of req.outputs ?? []) if (o.parameters && o.parameters[SHM_REGION] !== undefined) return true;
  return false;
}

function withoutShmKeys(params: Parameters | undefined): Parameters | undefined {
  if (!params) return undefined;
  const out: Parameters = {};
  for (const [k, v] of Object.entries(params)) if (!SHM_KEYS.includes(k)) out[k] = v;
  return Object.keys(out).length ? out : undefined;
}

/** A request parameter as an unsigned 64-bit integer; undefined if it is not one. */
function toUint64(v: ParameterValue | undefined): bigint | undefined {
  if (typeof v === "bigint") return v >= 0n && v <= UINT64_MAX ? v : undefined;
  if (typeof v === "number" && Number.isInteger(v) && v >= 0) {
    const b = BigInt(v);
    // JSON numbers past 2^64 (e.g. 2^64 - 32 read as a double) saturate.
    return b > UINT64_MAX ? UINT64_MAX : b;
  }
  return undefined;
}

function toSafeInteger(v: number | bigint): number | undefined {
  if (typeof v === "bigint") return v >= 0n && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : undefined;
  return Number.isSafeInteger(v) && v >= 0 ? v : undefined;
}

/** shm_open(key, O_RDWR): no symbolic links, and never blocks (a FIFO is refused after fstat). */
function openObject(file: string, key: string): number {
  const { O_RDWR, O_NOFOLLOW, O_NONBLOCK } = fs.constants;
  try {
    return fs.openSync(file, O_RDWR | (O_NOFOLLOW ?? 0) | (O_NONBLOCK ?? 0));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT" ? "no such shared memory object"
      : code === "EACCES" || code === "EPERM" ? "permission denied"
      : code === "ELOOP" ? "a symbolic link, not a shared memory object"
      : code === "EISDIR" ? "not a shared memory object"
      : (e as Error).message;
    throw invalidArg(`Unable to open shared memory region: '${key}' (${why})`);
  }
}

function readRegion(ref: ShmRef): Promise<Buffer> | Buffer {
  // Its own ArrayBuffer (not a slice of Node's pool), so a backend may transfer it.
  const buf = Buffer.allocUnsafeSlow(ref.byteSize);
  const position = ref.region.offset + ref.offset;
  const check = (n: number): Buffer => {
    if (n !== ref.byteSize) throw shrunk(ref);
    return buf;
  };
  if (ref.byteSize <= SYNC_IO_BYTES) return check(readFully(ref.region.fd, buf, position));
  return readFullyAsync(ref.region.fd, buf, position).then(check);
}

async function writeRegion(ref: ShmRef, data: Uint8Array, output: string): Promise<void> {
  const position = ref.region.offset + ref.offset;
  // Writing past the end would grow the client's object; refuse instead.
  if (fs.fstatSync(ref.region.fd).size < position + data.byteLength) throw shrunk(ref, output);
  if (data.byteLength <= SYNC_IO_BYTES) {
    let done = 0;
    while (done < data.byteLength) done += fs.writeSync(ref.region.fd, data, done, data.byteLength - done, position + done);
    return;
  }
  let done = 0;
  while (done < data.byteLength) {
    done += await new Promise<number>((resolve, reject) =>
      fs.write(ref.region.fd, data, done, data.byteLength - done, position + done, (err, n) => (err ? reject(err) : resolve(n))),
    );
  }
}

function shrunk(ref: ShmRef, output?: string): TritonError {
  const r = ref.region;
  return invalidArg(
    `shared memory region '${r.name}' (key '${r.key}') is smaller than when it was registered; ` +
      `${output ? `output '${output}'` : "the input"} needs bytes [${r.offset + ref.offset}, ${r.offset + ref.offset + ref.byteSize}) of it`,
  );
}

function readFully(fd: number, buf: Buffer, position: number): number {
  let done = 0;
  while (done < buf.byteLength) {
    const n = fs.readSync(fd, buf, done, buf.byteLength - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

async function readFullyAsync(fd: number, buf: Buffer, position: number): Promise<number> {
  let done = 0;
  while (done < buf.byteLength) {
    const n = await new Promise<number>((resolve, reject) =>
      fs.read(fd, buf, done, buf.byteLength - done, position + done, (err, bytes) => (err ? reject(err) : resolve(bytes))),
    );
    if (n === 0) break;
    done += n;
  }
  return done;
}

/** The values of settled promises, or the first rejection's reason thrown. */
function settledOrThrow<T>(results: PromiseSettledResult<T>[]): T[] {
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}
