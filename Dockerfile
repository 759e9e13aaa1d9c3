# syntax=docker/dockerfile:1
#
# Tritium server image: docker build -t tritium .
#   docker run --rm -p 8000-8002:8000-8002 -v "$PWD/examples/model_repository:/models:ro" tritium
# Arguments after the image name replace the default CMD and are tritonserver's flags:
#   docker run ... tritium --model-repository=/models --model-control-mode=explicit --load-model=simple
#
# scripts/build-oci-image.sh builds an equivalent image without a Docker engine (docs/deployment.md).

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: dev dependencies, TypeScript → dist/ ----
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
COPY packages/client/package.json packages/client/
# package.json's allowScripts denies every install script this tree has (onnxruntime-node's
# postinstall would fetch CUDA libraries; its CPU library ships in the package), but only npm 11
# reads allowScripts and this image has npm 10: --ignore-scripts gives the same install.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY packages/client packages/client
# Only the server's sources: tsconfig's other folders (tests, benchmarks) are simply absent here.
COPY src src
RUN npm run build

# ---- deps: production node_modules only, pruned to this platform ----
FROM ${NODE_IMAGE} AS deps
ARG TARGETARCH
WORKDIR /opt/tritium
COPY package.json package-lock.json ./
# The lockfile names the client workspace, so npm ci needs its package.json; the server never
# imports the client, and its link is removed.
COPY packages/client/package.json packages/client/
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm -rf node_modules/@tritium packages
# onnxruntime-node ships its library for every OS and CPU (288 MB): keep this platform's (45 MB).
# Types, source maps and docs are never loaded at run time.
RUN arch="$( [ "${TARGETARCH:-amd64}" = arm64 ] && echo arm64 || echo x64 )" \
 && find node_modules/onnxruntime-node/bin -mindepth 2 -maxdepth 2 ! -name linux -exec rm -rf {} + \
 && find node_modules/onnxruntime-node/bin -mindepth 3 -maxdepth 3 -path '*/linux/*' ! -name "$arch" -exec rm -rf {} + \
 && test -f "node_modules/onnxruntime-node/bin/napi-v6/linux/$arch/onnxruntime_binding.node" \
 && find node_modules \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' -o -name '*.md' \) -type f -delete

# ---- runtime ----
FROM ${NODE_IMAGE}
# tini as PID 1 passes SIGTERM to the server (which drains for up to --exit-timeout-secs) and
# reaps the Python backend's orphaned processes, which Node as PID 1 would not.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 tritium \
 && useradd --system --uid 10001 --gid tritium --home-dir /opt/tritium --shell /usr/sbin/nologin tritium \
 && mkdir -p /models
WORKDIR /opt/tritium
# package.json gives dist/ its "type": "module"; python/ holds the Python backend's host process,
# found beside dist/ at run time.
COPY --from=deps /opt/tritium/node_modules node_modules
COPY --from=build /src/dist/src dist/src
COPY package.json ./
COPY python python
COPY examples/model_repository/simple /models/simple
# Set here, the launcher runs the server in this process instead of relaunching a child with them.
ENV MALLOC_ARENA_MAX=2
USER 10001:10001
EXPOSE 8000 8001 8002
# There is no curl in the image; Node asks. A changed --http-port needs this changed too.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8000/v2/health/ready').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/opt/tritium/dist/src/cli/main.js"]
CMD ["--model-repository=/models"]
