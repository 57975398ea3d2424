// Bundles the gateway into one file, dist/main.js, with only the code it reaches: the Kubernetes client
// is large and loading all of it costs ~40 MiB of resident memory (see docs/performance.md).
//   node scripts/bundle.ts [--metafile]     (npm run bundle; npm run build runs it after tsc)
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire, isBuiltin } from 'node:module';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build, type Plugin } from 'esbuild';

const root = resolve(import.meta.dirname, '..');

// The Kubernetes client's index re-exports every generated API and model; its package.json does not say
// that importing them has no side effects, so without this every one of them would be loaded at start.
const kubernetesClientWithoutSideEffects: Plugin = {
  name: 'kubernetes-client-side-effect-free',
  setup(b) {
    b.onResolve({ filter: /.*/ }, async (args) => {
      if ((args.pluginData as { inner?: boolean } | undefined)?.inner) return undefined;
      const resolved = await b.resolve(args.path, {
        kind: args.kind,
        resolveDir: args.resolveDir,
        importer: args.importer,
        pluginData: { inner: true },
      });
      if (resolved.errors.length > 0 || !resolved.path.includes('/node_modules/@kubernetes/client-node/'))
        return undefined;
      return { path: resolved.path, sideEffects: false };
    });
  },
};
// The client's ListWatch imports its model serializer only to pass label and field selectors through
// serialize(value, 'string'); the real one pulls in every generated model class (~470 KiB of code and
// ~5 MiB of resident memory). The gateway makes its own API requests (src/kube/rest.ts), so nothing
// else needs it; any other use fails loudly instead of silently mis-serializing.
const stringOnlySerializer: Plugin = {
  name: 'kubernetes-client-string-serializer',
  setup(b) {
    b.onLoad({ filter: /[\\/]@kubernetes[\\/]client-node[\\/]dist[\\/]serializer\.js$/ }, () => ({
      loader: 'js',
      contents: `const only = (data, type) => {
  if (type !== 'string') throw new Error('buildkitd-autoscaler bundle: ObjectSerializer supports only "string", got ' + type);
  return data;
};
export const ObjectSerializer = { serialize: only, deserialize: only };
`,
    }));
  },
};

// The client imports undici for its own requests (watch, getDispatcher); the gateway makes every request
// over node:https (src/kube/rest.ts). Loading undici, and the HTTP/2, web-stream and worker modules it
// pulls in, cost ~4 MiB of idle memory; a call that would still reach it fails loudly.
const withoutUndici: Plugin = {
  name: 'without-undici',
  setup(b) {
    b.onResolve({ filter: /^undici$/ }, () => ({ path: 'undici', namespace: 'without-undici' }));
    b.onLoad({ filter: /.*/, namespace: 'without-undici' }, () => ({
      loader: 'js',
      contents: `const missing = () => {
  throw new Error('buildkitd-autoscaler bundle: undici is not included; make requests with src/kube/rest.ts');
};
export const Agent = missing, ProxyAgent = missing, fetch = missing;
`,
    }));
  },
};

// pino loads thread-stream (and with it worker_threads) for transports, which the gateway never uses: it
// writes JSON lines to stdout itself (src/log.ts). A transport that would still reach it fails loudly.
const withoutPinoTransports: Plugin = {
  name: 'without-pino-transports',
  setup(b) {
    b.onResolve({ filter: /^thread-stream$/ }, () => ({ path: 'thread-stream', namespace: 'without-pino-transports' }));
    b.onLoad({ filter: /.*/, namespace: 'without-pino-transports' }, () => ({
      loader: 'js',
      contents: `module.exports = class ThreadStream {
  constructor() {
    throw new Error('buildkitd-autoscaler bundle: pino transports are not included; the gateway logs to stdout');
  }
};
`,
    }));
  },
};

// pino's tools load worker_threads only to read isMainThread, for its transports; the gateway writes through
// a synchronous sonic-boom destination (src/log.ts) and runs as the main thread, never in a Worker.
const pinoOnMainThread: Plugin = {
  name: 'pino-on-main-thread',
  setup(b) {
    b.onResolve({ filter: /^(node:)?worker_threads$/ }, (args) =>
      /[\\/]pino[\\/]lib[\\/]tools\.js$/.test(args.importer)
        ? { path: 'worker_threads', namespace: 'pino-on-main-thread' }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'pino-on-main-thread' }, () => ({
      loader: 'js',
      contents: 'module.exports = { isMainThread: true };',
    }));
  },
};

// prom-client loads its Pushgateway (and with it zlib) and OpenTelemetry's API (only for exemplars) at start;
// the gateway is scraped and has no exemplars. Either one, still reached, fails loudly.
const withoutPromClientExtras: Plugin = {
  name: 'without-prom-client-extras',
  setup(b) {
    b.onLoad({ filter: /[\\/]prom-client[\\/]lib[\\/]pushgateway\.js$/ }, () => ({
      loader: 'js',
      contents: `module.exports = class Pushgateway {
  constructor() {
    throw new Error('buildkitd-autoscaler bundle: the Pushgateway is not included; /metrics is scraped');
  }
};
`,
    }));
    b.onResolve({ filter: /^@opentelemetry\/api$/ }, () => ({
      path: '@opentelemetry/api',
      namespace: 'without-prom-client-extras',
    }));
    b.onLoad({ filter: /.*/, namespace: 'without-prom-client-extras' }, () => ({
      loader: 'js',
      contents: `const missing = () => {
  throw new Error('buildkitd-autoscaler bundle: @opentelemetry/api is not included; metrics have no exemplars');
};
module.exports = { get trace() { return missing(); }, get context() { return missing(); } };
`,
    }));
  },
};

// An ES module import of a Node built-in goes through a module facade that reads every export, and with
// that every lazy one: `node:http` alone then loads Node's own undici (its WebSocket), HTTP/2 and worker
// threads. Through require() they stay lazy: ~5 MiB less resident memory at idle.
const builtinsThroughRequire: Plugin = {
  name: 'builtins-through-require',
  setup(b) {
    b.onResolve({ filter: /.*/ }, (args) => {
      if (!isBuiltin(args.path)) return undefined;
      if (args.namespace === 'builtin-lazy') return { path: args.path, external: true };
      if (idleUnusedBuiltins.has(args.path.replace(/^node:/, '')))
        return { path: args.path, namespace: 'builtin-lazy' };
      if (args.kind !== 'import-statement') return undefined;
      return { path: args.path, namespace: 'builtin-require' };
    });
    b.onLoad({ filter: /.*/, namespace: 'builtin-require' }, (args) => ({
      loader: 'js',
      contents: `module.exports = require(${JSON.stringify(args.path)});`,
    }));
    b.onLoad({ filter: /.*/, namespace: 'builtin-lazy' }, (args) => ({
      loader: 'js',
      contents: lazyBuiltinFacade(args.path),
    }));
  },
};

// Built-ins that dependencies import at start but that an idle gateway never calls: the Kubernetes client's
// watch (readline) and sonic-boom's assert. Each loaded one is compiled code and source pages; they load
// on first use instead. child_process stays eager: the client's ExecAuth reads spawn when it is constructed.
const idleUnusedBuiltins = new Set(['assert', 'readline']);

/** A stand-in with the built-in's export names (read here, same Node major) that loads it on first access. */
function lazyBuiltinFacade(specifier: string): string {
  const real: unknown = createRequire(import.meta.url)(specifier);
  return lazyFacade(specifier, Object.keys(real as object), typeof real === 'function');
}

/** CommonJS whose exports are getters: the module behind `specifier` is required (initialised) on first access. */
function lazyFacade(specifier: string, names: readonly string[], callable: boolean): string {
  const getters = names
    .filter((name) => name !== 'default' && name !== '__esModule')
    .map(
      (name) =>
        `Object.defineProperty(facade, ${JSON.stringify(name)}, { enumerable: true, get: () => load()[${JSON.stringify(name)}] });`,
    );
  return [
    'let loaded;',
    `const load = () => (loaded ??= require(${JSON.stringify(specifier)}));`,
    callable ? 'const facade = function (...args) { return load().apply(this, args); };' : 'const facade = {};',
    ...getters,
    'module.exports = facade;',
  ].join('\n');
}

// Proxy agents and auth plugins the Kubernetes client imports at start, for kubeconfigs with a proxy-url,
// an OIDC, Azure or GCP auth provider; a ServiceAccount token needs none of them. They (with socks,
// ip-address, openid-client, oauth4webapi, jsonpath-plus, debug) initialise on first use instead: idle RSS
// -0.5 MiB, although behind a require() esbuild keeps their whole code (the bundle grows ~110 KB).
const kubernetesClientRarePackages = new Set([
  'socks-proxy-agent',
  'socks',
  'hpagent',
  'openid-client',
  'jsonpath-plus',
]);
const kubernetesClientLazyPackages: Plugin = {
  name: 'kubernetes-client-lazy-packages',
  setup(b) {
    b.onResolve({ filter: /.*/ }, (args) => {
      if (
        !kubernetesClientRarePackages.has(args.path) ||
        args.namespace === 'lazy-package' ||
        !/[\\/]@kubernetes[\\/]client-node[\\/]/.test(args.importer)
      )
        return undefined;
      return { path: args.path, namespace: 'lazy-package', pluginData: { resolveDir: args.resolveDir } };
    });
    b.onLoad({ filter: /.*/, namespace: 'lazy-package' }, async (args) => {
      const { resolveDir } = args.pluginData as { resolveDir: string };
      const real = await b.resolve(args.path, { kind: 'import-statement', resolveDir });
      const names = Object.keys((await import(pathToFileURL(real.path).href)) as object);
      return { loader: 'js', contents: lazyFacade(args.path, names, false), resolveDir };
    });
  },
};

// What --version, the startup log line and bka_build_info say (src/build-info.ts). BKA_BUILD_REVISION is for
// builds without the repository (the image: its context has no .git; the release passes the commit).
function gitRevision(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return 'unknown';
  }
}
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
const revision = process.env['BKA_BUILD_REVISION'] || gitRevision();

const outfile = join(root, 'dist', 'main.js');
const result = await build({
  entryPoints: [join(root, 'src', 'main.ts')],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node22',
  // CommonJS dependencies call require() for Node built-ins; an ES module has no require of its own.
  banner: {
    js: "import { createRequire as __bkaCreateRequire } from 'node:module';\nconst require = __bkaCreateRequire(import.meta.url);",
  },
  define: { BKA_BUILD_VERSION: JSON.stringify(version), BKA_BUILD_REVISION: JSON.stringify(revision) },
  minifySyntax: true,
  minifyWhitespace: true,
  // No keepNames: identifiers are not minified, so functions keep their names; keepNames would wrap every
  // closure creation in a defineProperty call (__name), 2.4% of the gateway's CPU per connection in a profile.
  sourcemap: false,
  legalComments: 'none',
  metafile: process.argv.includes('--metafile'),
  plugins: [
    builtinsThroughRequire,
    kubernetesClientLazyPackages,
    kubernetesClientWithoutSideEffects,
    stringOnlySerializer,
    withoutUndici,
    withoutPinoTransports,
    pinoOnMainThread,
    withoutPromClientExtras,
  ],
  logLevel: 'warning',
});
// V8 keeps a script's source for lazy compilation; one non-ASCII character makes it UTF-16, twice the
// memory (1.4 instead of 0.7 MiB). esbuild escapes strings but not regular expression literals.
const nonAscii = /[\u0080-\u00ff]/.exec(readFileSync(outfile, 'latin1'));
if (nonAscii)
  throw new Error(
    `dist/main.js is not ASCII at offset ${nonAscii.index}: escape that character in the source (\\uXXXX)`,
  );
if (result.metafile) writeFileSync(join(root, 'dist', 'meta.json'), JSON.stringify(result.metafile));
