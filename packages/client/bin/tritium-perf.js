#!/usr/bin/env node
// A launcher that exists before the build, so that npm can link and mark it
// executable at install time; the tool itself is compiled into dist/.
await import("../dist/src/perf/main.js");
