#!/usr/bin/env node
/**
 * tritium-perf: perf_analyzer's role for any KServe v2 server. Sweeps
 * concurrency or request rate; per step, measures windows until stable and
 * prints throughput, client latency percentiles and the server's time per
 * request (statistics extension). Progress goes to stderr, the table to
 * stdout, perf_analyzer's CSV to `-f`.
 */
import { writeFile } from "node:fs/promises";
import { GrpcClient, HttpClient, InferenceServerError } from "../index.js";
import { parsePerfArgs, rangeValues, UsageError, USAGE, type PerfOptions } from "./args.js";
import { makeInputs } from "./inputs.js";
import { ConcurrencyLoad, RequestRateLoad, type Load } from "./load.js";
import { measureStep, type StepResult } from "./measure.js";
import { csv, table } from "./report.js";

const progress = (line: string) => process.stderr.write(line + "\n");

async function run(options: PerfOptions): Promise<void> {
  const client = options.protocol === "grpc" ? new GrpcClient(options.url) : new HttpClient(options.url);
  try {
    const { inputs } = await makeInputs(client, options);
    const rateMode = options.requestRate !== undefined;
    progress("*** Measurement Settings ***");
    progress(`  Batch size: ${options.batchSize}`);
    progress(`  Service Kind: ${options.protocol.toUpperCase()}`);
    progress(`  Measurement window: ${options.measurementIntervalMs} msec`);
    progress(`  Stabilizing using ${options.percentile === undefined ? "average" : `p${options.percentile}`} latency`);
    progress("");
    const results: StepResult[] = [];
    for (const value of rangeValues(options.requestRate ?? options.concurrency)) {
      progress(rateMode ? `Request Rate: ${value} inference requests per seconds` : `Request concurrency: ${value}`);
      const load: Load = rateMode
        ? new RequestRateLoad(client, options.model, options.modelVersion, inputs, value)
        : new ConcurrencyLoad(client, options.model, options.modelVersion, inputs, value);
      load.start();
      let result: StepResult;
      try {
        result = await measureStep(client, load, value, options, progress);
      } finally {
        await load.stop();
      }
      if (!result.stable) {
        progress(`  Failed to obtain stable measurement within ${options.maxTrials} measurement windows; reporting the last 3. Try a longer --measurement-interval.`);
      }
      progress(`  Client: ${result.requests} requests, ${result.throughput.toFixed(2)} infer/sec, avg latency ${result.avgLatencyUs} usec`);
      if (result.serverRequests) {
        progress(`  Server: ${result.serverRequests} requests, queue ${result.serverQueueUs} usec + compute input ${result.serverComputeInputUs} usec` +
          ` + compute infer ${result.serverComputeInferUs} usec + compute output ${result.serverComputeOutputUs} usec`);
      } else {
        progress("  Server: no statistics (the server has no statistics extension, or counted nothing)");
      }
      results.push(result);
    }
    process.stdout.write(table(results, rateMode));
    if (options.csvFile) await writeFile(options.csvFile, csv(results, rateMode));
  } finally {
    client.close();
  }
}

async function main(): Promise<number> {
  let options: PerfOptions | undefined;
  try {
    options = parsePerfArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`error: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (!options) {
    process.stdout.write(USAGE);
    return 0;
  }
  try {
    await run(options);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) process.stderr.write(`error: ${e.message}\n`);
    else if (e instanceof InferenceServerError) process.stderr.write(`error: the server answered ${e.status}: ${e.message}\n`);
    else process.stderr.write(`error: ${(e as Error).stack ?? String(e)}\n`);
    return 1;
  }
}

process.exitCode = await main();
