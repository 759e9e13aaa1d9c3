import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";
import { create, fromBinary, isMessage, toBinary, type DescMessage, type DescService, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";

/**
 * A @grpc/grpc-js service definition built from a generated protobuf-es
 * service descriptor: one protobuf toolchain for the config parser, the
 * server and the tests' client. Keys are the RPC names as in the .proto
 * (`ModelInfer`), paths are `/<package>.<Service>/<Method>`.
 *
 * Serialization never copies a message twice: `toBinary` output is wrapped
 * as a Buffer in place, and `fromBinary` returns `bytes` fields as views into
 * the received buffer (so `raw_input_contents` reach core without a copy).
 */
export function serviceDefinition(service: DescService): ServiceDefinition {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- messages of every method share one map
  const def: Record<string, MethodDefinition<any, any>> = {};
  for (const m of service.methods) {
    const streamingRequest = m.methodKind === "client_streaming" || m.methodKind === "bidi_streaming";
    const streamingResponse = m.methodKind === "server_streaming" || m.methodKind === "bidi_streaming";
    def[m.name] = {
      path: `/${service.typeName}/${m.name}`,
      requestStream: streamingRequest,
      responseStream: streamingResponse,
      requestSerialize: serializer(m.input),
      requestDeserialize: deserializer(m.input),
      responseSerialize: serializer(m.output),
      responseDeserialize: deserializer(m.output),
      originalName: m.localName,
    };
  }
  return def as ServiceDefinition;
}

/** Accepts a message or a plain init object (as a client built on this definition may pass). */
function serializer<D extends DescMessage>(desc: D): (value: MessageShape<D> | MessageInitShape<D>) => Buffer {
  return (value) => {
    const bytes = toBinary(desc, isMessage(value, desc) ? value : create(desc, value));
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserializer<D extends DescMessage>(desc: D): (bytes: Buffer) => MessageShape<D> {
  return (bytes) => fromBinary(desc, bytes);
}
