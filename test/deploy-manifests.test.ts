// The Helm chart (deploy/helm/tritium) and the KServe manifests (deploy/kserve), checked with no
// cluster: the chart is rendered by test/deploy-template.ts, every object is validated against
// the Kubernetes (kubernetes-models 4.5.1) and prometheus-operator schemas, and the flags the
// manifests give the container are given to the real CLI.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import YAML from "yaml";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Container } from "kubernetes-models/v1/Container";
import { Service } from "kubernetes-models/v1/Service";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { ObjectMeta } from "@kubernetes-models/apimachinery/apis/meta/v1/ObjectMeta";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { Chart, typeCheck, type TypedObject } from "./deploy-template.js";
import { EXAMPLES, ROOT, startCli } from "./helpers.js";

const chart = new Chart(path.join(ROOT, "deploy", "helm", "tritium"));

// Each kind the chart may render, with the schema it must meet.
const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  "apps/v1/Deployment": Deployment,
  "v1/Service": Service,
  "v1/ConfigMap": ConfigMap,
  "autoscaling/v2/HorizontalPodAutoscaler": HorizontalPodAutoscaler,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
  "monitoring.coreos.com/v1/PodMonitor": PodMonitor,
};

/** Renders, validates every object against its schema and returns them by kind. */
function renderValid(values: Record<string, unknown> = {}): Map<string, any> {
  const byKind = new Map<string, any>();
  for (const obj of chart.objects(values)) {
    const key = `${obj.apiVersion}/${obj.kind}`;
    const Model = MODELS[key];
    assert.ok(Model, `no schema for ${key}`);
    new Model(obj).validate();
    assert.ok(!byKind.has(obj.kind), `two ${obj.kind}s`);
    byKind.set(obj.kind, obj);
  }
  return byKind;
}

// The same kinds as kubernetes-models' TypeScript types, for the unknown-field check.
const TYPES: Record<string, [module: string, type: string]> = {
  "apps/v1/Deployment": ["kubernetes-models/apps/v1/Deployment", "IDeployment"],
  "v1/Service": ["kubernetes-models/v1/Service", "IService"],
  "v1/ConfigMap": ["kubernetes-models/v1/ConfigMap", "IConfigMap"],
  "autoscaling/v2/HorizontalPodAutoscaler": ["kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler", "IHorizontalPodAutoscaler"],
  "monitoring.coreos.com/v1/ServiceMonitor": ["@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor", "IServiceMonitor"],
  "monitoring.coreos.com/v1/PodMonitor": ["@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor", "IPodMonitor"],
};

const FULL = {
  autoscaling: { enabled: true, targetCPUUtilizationPercentage: 80 },
  metrics: { serviceMonitor: { enabled: true, labels: { release: "prometheus" } }, podMonitor: { enabled: true } },
};

function flag(args: string[], name: string): string | undefined {
  return args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

test("the chart's default render is a valid Deployment and Service, with no HPA, monitors or ConfigMap", () => {
  const objs = renderValid();
  assert.deepEqual([...objs.keys()].sort(), ["Deployment", "Service"]);
  assert.equal(objs.get("Deployment").metadata.name, "demo-tritium");
  assert.equal(objs.get("Deployment").spec.replicas, 1);
});

test("the Deployment probes /v2/health/ready and /v2/health/live on its http port 8000 and exposes 8000, 8001 and 8002", () => {
  const pod = renderValid().get("Deployment").spec.template.spec;
  const [c] = pod.containers;
  assert.deepEqual(c.ports.map((p: any) => [p.name, p.containerPort]), [["http", 8000], ["grpc", 8001], ["metrics", 8002]]);
  assert.deepEqual(c.readinessProbe.httpGet, { path: "/v2/health/ready", port: "http" });
  assert.deepEqual(c.livenessProbe.httpGet, { path: "/v2/health/live", port: "http" });
  assert.deepEqual(c.startupProbe.httpGet, { path: "/v2/health/live", port: "http" });
  assert.deepEqual([flag(c.args, "http-port"), flag(c.args, "grpc-port"), flag(c.args, "metrics-port")], ["8000", "8001", "8002"]);
  assert.deepEqual(c.env.slice(0, 1), [{ name: "MALLOC_ARENA_MAX", value: "2" }]);
  assert.deepEqual(c.resources, { requests: { cpu: "1", memory: "1Gi" }, limits: { cpu: "2", memory: "2Gi" } });
  assert.equal(c.image, "tritium:0.1.0");
  assert.equal(pod.securityContext.runAsUser, 10001);
  const annotations = renderValid().get("Deployment").spec.template.metadata.annotations;
  assert.equal(annotations["prometheus.io/scrape"], "true");
  assert.equal(annotations["prometheus.io/port"], "8002");
});

test("the pod's termination grace period exceeds the --exit-timeout-secs its container gets, at the default and at 120 s", () => {
  for (const [values, exit] of [[{}, 30], [{ server: { exitTimeoutSecs: 120 } }, 120]] as const) {
    const pod = renderValid(values).get("Deployment").spec.template.spec;
    const args: string[] = pod.containers[0].args;
    assert.equal(Number(flag(args, "exit-timeout-secs")), exit);
    const preStop = Number(pod.containers[0].lifecycle.preStop.exec.command[1]);
    assert.ok(pod.terminationGracePeriodSeconds > exit + preStop, `grace ${pod.terminationGracePeriodSeconds} s for a ${exit} s drain after a ${preStop} s preStop`);
  }
});

test("the Service selects the Deployment's pods and forwards 8000, 8001 and 8002 to its named ports", () => {
  const objs = renderValid();
  const svc = objs.get("Service");
  const labels = objs.get("Deployment").spec.template.metadata.labels;
  for (const [k, v] of Object.entries(svc.spec.selector)) assert.equal(labels[k], v, k);
  assert.deepEqual(objs.get("Deployment").spec.selector.matchLabels, svc.spec.selector);
  assert.deepEqual(svc.spec.ports.map((p: any) => [p.port, p.targetPort]), [[8000, "http"], [8001, "grpc"], [8002, "metrics"]]);
});

test("with autoscaling on, the HPA scales the Deployment on prometheus-adapter's queue-time-per-request Pods metric, and the Deployment leaves replicas to it", () => {
  const objs = renderValid(FULL);
  const deployment = objs.get("Deployment");
  const hpa = objs.get("HorizontalPodAutoscaler");
  assert.equal(deployment.spec.replicas, undefined);
  assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: "apps/v1", kind: "Deployment", name: deployment.metadata.name });
  const [pods, cpu] = hpa.spec.metrics;
  assert.equal(pods.type, "Pods");
  assert.deepEqual(pods.pods.target, { type: "AverageValue", averageValue: "20000" });
  assert.deepEqual(cpu.resource, { name: "cpu", target: { type: "Utilization", averageUtilization: 80 } });

  // The adapter rule publishes exactly the name the HPA asks for, from Triton's queue metric.
  const adapter = YAML.parse(readFileSync(path.join(ROOT, "deploy", "helm", "prometheus-adapter-values.yaml"), "utf8"));
  const [rule] = adapter.rules.custom;
  assert.equal(rule.name.as, pods.pods.metric.name);
  assert.match(rule.seriesQuery, /^nv_inference_queue_duration_us\{/);
  assert.match(rule.metricsQuery, /rate\(nv_inference_queue_duration_us\{<<\.LabelMatchers>>\}\[1m\]\).*\/.*rate\(nv_inference_request_success\{<<\.LabelMatchers>>\}/s);
  assert.deepEqual(rule.resources.overrides, { namespace: { resource: "namespace" }, pod: { resource: "pod" } });

  const notes = chart.render(FULL).get("NOTES.txt")!;
  assert.match(notes, /custom\.metrics\.k8s\.io\/v1beta1\/namespaces\/models\/pods\/\*\/tritium_queue_time_per_request_us/);
});

test("with monitors on, the ServiceMonitor and PodMonitor select the chart's objects and scrape /metrics on the metrics port", () => {
  const objs = renderValid(FULL);
  const svc = objs.get("Service");
  const podLabels = objs.get("Deployment").spec.template.metadata.labels;
  const sm = objs.get("ServiceMonitor");
  assert.deepEqual(sm.spec.selector.matchLabels, svc.metadata.labels["app.kubernetes.io/name"] && {
    "app.kubernetes.io/name": svc.metadata.labels["app.kubernetes.io/name"],
    "app.kubernetes.io/instance": svc.metadata.labels["app.kubernetes.io/instance"],
  });
  assert.equal(sm.metadata.labels.release, "prometheus");
  assert.deepEqual(sm.spec.endpoints, [{ port: "metrics", path: "/metrics", interval: "15s" }]);
  assert.ok(svc.spec.ports.some((p: any) => p.name === "metrics"));
  const pm = objs.get("PodMonitor");
  for (const [k, v] of Object.entries(pm.spec.selector.matchLabels)) assert.equal(podLabels[k], v, k);
  assert.deepEqual(pm.spec.podMetricsEndpoints, [{ port: "metrics", path: "/metrics", interval: "15s" }]);
  assert.deepEqual(sm.spec.namespaceSelector, { matchNames: ["models"] });
});

test("an invalid value fails schema validation, and a missing required value or key fails rendering", () => {
  assert.throws(() => renderValid({ ports: { http: "eighty" } }), /containerPort must be integer/);
  assert.throws(() => renderValid({ autoscaling: { enabled: true, minReplicas: "two" } }), /minReplicas must be integer/);
  assert.throws(() => renderValid({ modelRepository: { type: "persistentVolumeClaim" } }), /claimName is required/);
  assert.throws(() => renderValid({ modelRepository: { type: "none" } }), /modelRepository.url is required/);
  assert.throws(() => renderValid({ server: null }), /no key "server"|no key "modelControlMode"/);
});

/** Files of a ConfigMap volume as the kubelet lays them out: each item's key at its path. */
function materialize(configMap: any, volume: any, dir: string): void {
  for (const item of volume.configMap.items) {
    const file = path.join(dir, item.path);
    mkdirSync(path.dirname(file), { recursive: true });
    const text = configMap.data?.[item.key];
    const b64 = configMap.binaryData?.[item.key];
    assert.ok(text !== undefined || b64 !== undefined, `no key ${item.key} in the ConfigMap`);
    writeFileSync(file, text ?? Buffer.from(b64, "base64"));
  }
}

const SIMPLE = path.join(EXAMPLES, "simple");
const CONFIGMAP_REPOSITORY = {
  modelRepository: {
    type: "configMap",
    configMap: {
      files: { "simple/config.pbtxt": readFileSync(path.join(SIMPLE, "config.pbtxt"), "utf8") },
      binaryFiles: { "simple/1/model.onnx": readFileSync(path.join(SIMPLE, "1", "model.onnx")).toString("base64") },
    },
  },
};

test("the example simple model in a ConfigMap repository is served by the CLI started with the Deployment's own args, and the probe paths answer 200", async () => {
  const objs = renderValid(CONFIGMAP_REPOSITORY);
  const pod = objs.get("Deployment").spec.template.spec;
  const [c] = pod.containers;
  const mount = c.volumeMounts.find((m: any) => m.name === "model-repository");
  assert.deepEqual([mount.mountPath, mount.readOnly], ["/models", true]);
  assert.equal(flag(c.args, "model-repository"), "/models");
  const volume = pod.volumes.find((v: any) => v.name === "model-repository");
  assert.equal(volume.configMap.name, objs.get("ConfigMap").metadata.name);
  assert.match(objs.get("Deployment").spec.template.metadata.annotations["checksum/model-repository"], /^[0-9a-f]{64}$/);

  const dir = mkdtempSync(path.join(os.tmpdir(), "tritium-configmap-"));
  try {
    materialize(objs.get("ConfigMap"), volume, dir);
    const args = c.args.map((a: string) =>
      a.startsWith("--model-repository=") ? `--model-repository=${dir}` : /^--(http|grpc|metrics)-port=/.test(a) ? a.replace(/=\d+$/, "=0") : a);
    const server = await startCli(args);
    try {
      for (const probe of [c.readinessProbe, c.livenessProbe, c.startupProbe]) {
        assert.equal((await fetch(`${server.url}${probe.httpGet.path}`)).status, 200, probe.httpGet.path);
      }
      const res = await fetch(`${server.url}/v2/models/simple/infer`, {
        method: "POST",
        body: JSON.stringify({
          inputs: [
            { name: "INPUT0", shape: [1, 16], datatype: "INT32", data: Array(16).fill(5) },
            { name: "INPUT1", shape: [1, 16], datatype: "INT32", data: Array(16).fill(2) },
          ],
        }),
      });
      assert.equal(res.status, 200);
      const body = (await res.json()) as { outputs: { name: string; data: number[] }[] };
      assert.deepEqual(body.outputs.find((o) => o.name === "OUTPUT0")!.data, Array(16).fill(7));
      await startedFully(server);
      assert.equal(await server.stop(), 0);
    } finally {
      await server.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** The CLI installs its SIGTERM handler once its last frontend (metrics) listens; a stop before that is a plain kill. */
async function startedFully(server: { output(): string }): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!/Started Metrics Service/.test(server.output())) {
    assert.ok(Date.now() < deadline, `no metrics service:\n${server.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const kserve = (file: string) =>
  YAML.parseAllDocuments(readFileSync(path.join(ROOT, "deploy", "kserve", file), "utf8")).map((d) => d.toJS());

test("the KServe ServingRuntime declares the v2 protocols and Tritium's model formats, with a valid Kubernetes container whose args the CLI accepts", async () => {
  const [rt] = kserve("serving-runtime.yaml");
  assert.equal(rt.apiVersion, "serving.kserve.io/v1alpha1");
  assert.equal(rt.kind, "ServingRuntime");
  new ObjectMeta(rt.metadata).validate();
  assert.deepEqual(rt.spec.protocolVersions, ["v2", "grpc-v2"]);
  assert.deepEqual(rt.spec.supportedModelFormats.map((f: any) => f.name), ["triton", "onnx", "pytorch", "python"]);
  for (const f of rt.spec.supportedModelFormats) assert.equal(typeof f.version, "string");
  assert.equal(rt.spec.containers.length, 1);
  const [c] = rt.spec.containers;
  new Container(c).validate();
  // KServe's storage initializer writes to /mnt/models and its routes go to 8080 and 9000.
  assert.equal(c.name, "kserve-container");
  assert.deepEqual([flag(c.args, "model-repository"), flag(c.args, "http-port"), flag(c.args, "grpc-port")], ["/mnt/models", "8080", "9000"]);
  assert.deepEqual(c.ports, [{ containerPort: 8080, protocol: "TCP" }]);
  assert.deepEqual(c.readinessProbe.httpGet, { path: "/v2/health/ready", port: 8080 });
  assert.equal(rt.spec.annotations["prometheus.kserve.io/port"], flag(c.args, "metrics-port"));

  const dir = mkdtempSync(path.join(os.tmpdir(), "tritium-kserve-"));
  try {
    cpSync(path.join(EXAMPLES, "simple"), path.join(dir, "simple"), { recursive: true });
    const args = c.args.map((a: string) =>
      a.startsWith("--model-repository=") ? `--model-repository=${dir}` : /^--(http|grpc|metrics)-port=/.test(a) ? a.replace(/=\d+$/, "=0") : a);
    const server = await startCli(args);
    try {
      assert.equal((await fetch(`${server.url}/v2/health/ready`)).status, 200);
      assert.match(server.output(), /Started GRPCInferenceService/);
      assert.equal(((await (await fetch(`${server.url}/v2/models/simple`)).json()) as { name: string }).name, "simple");
      await startedFully(server);
    } finally {
      assert.equal(await server.stop(), 0);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the example InferenceService runs a format the tritium runtime supports over v2, with a grace period above the runtime's exit timeout", () => {
  const [rt] = kserve("serving-runtime.yaml");
  const [isvc] = kserve("inference-service.yaml");
  assert.equal(isvc.apiVersion, "serving.kserve.io/v1beta1");
  assert.equal(isvc.kind, "InferenceService");
  new ObjectMeta(isvc.metadata).validate();
  const { predictor } = isvc.spec;
  assert.equal(predictor.model.runtime, rt.metadata.name);
  assert.ok(rt.spec.supportedModelFormats.some((f: any) => f.name === predictor.model.modelFormat.name));
  assert.ok(rt.spec.protocolVersions.includes(predictor.model.protocolVersion));
  assert.match(predictor.model.storageUri, /^(s3|gs|pvc|https?):\/\//);
  // The model block is a container (KServe merges it into kserve-container).
  new Container({ name: "kserve-container", resources: predictor.model.resources }).validate();
  assert.ok(predictor.terminationGracePeriodSeconds > Number(flag(rt.spec.containers[0].args, "exit-timeout-secs")));
});

test("every template file of the chart renders, NOTES.txt included, with defaults and with everything on", () => {
  const files = readdirSync(path.join(chart.dir, "templates")).filter((f) => !f.startsWith("_")).sort();
  for (const values of [{}, FULL]) {
    const out = chart.render(values);
    assert.deepEqual([...out.keys()].sort(), files);
    assert.match(out.get("NOTES.txt")!, /port-forward svc\/demo-tritium 8000:8000 8001:8001 8002:8002/);
  }
});

test("every object the chart renders and the KServe runtime's container and metadata have only fields their Kubernetes types declare, and a misspelt field is caught", () => {
  const objects: TypedObject[] = [];
  for (const [variant, values] of [["defaults", {}], ["everything on", FULL], ["ConfigMap repository", CONFIGMAP_REPOSITORY]] as const) {
    for (const obj of chart.objects(values)) {
      const [module, type] = TYPES[`${obj.apiVersion}/${obj.kind}`];
      objects.push({ module, type, value: obj, label: `${variant}: ${obj.kind}` });
    }
  }
  const [rt] = kserve("serving-runtime.yaml");
  const [isvc] = kserve("inference-service.yaml");
  const meta = "@kubernetes-models/apimachinery/apis/meta/v1/ObjectMeta";
  objects.push(
    { module: "kubernetes-models/v1/Container", type: "IContainer", value: rt.spec.containers[0], label: "ServingRuntime container" },
    { module: meta, type: "IObjectMeta", value: rt.metadata, label: "ServingRuntime metadata" },
    { module: meta, type: "IObjectMeta", value: isvc.metadata, label: "InferenceService metadata" },
  );
  const misspelt = structuredClone(chart.objects().find((o) => o.kind === "Deployment")!);
  const container = misspelt.spec.template.spec.containers[0];
  container.readinesProbe = container.readinessProbe;
  delete container.readinessProbe;
  objects.push({ module: TYPES["apps/v1/Deployment"][0], type: "IDeployment", value: misspelt, label: "misspelt" });

  const diagnostics = typeCheck(objects, ROOT);
  assert.deepEqual(diagnostics.filter((d) => d.label !== "misspelt"), []);
  const caught = diagnostics.filter((d) => d.label === "misspelt");
  assert.equal(caught.length, 1, JSON.stringify(caught));
  assert.match(caught[0].message, /'"readinesProbe"' does not exist in type 'IContainer'/);
  assert.ok(objects.length >= 13, `${objects.length} objects`);
});
