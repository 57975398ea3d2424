// Import rules for src/, checked by `npm run lint` (dependency-cruiser). Folders are layers, lowest first:
// the top-level helpers (errors, clock, config, log, metrics, events, ...), kube/, backends/, scaler/, ha/,
// then proxy/ and http/, and the wiring (gateway.ts and the files it composes, main.ts, wake-cli.ts) on top. Type-only imports count: a cycle of
// types is still a cycle a reader has to untangle. docs/ARCHITECTURE.md ("Layers") says the same in words.

const folders = '^src/(proxy|backends|kube|http|scaler|ha)/';
// The wiring: gateway.ts and the files it composes (each builds or connects parts of several folders), and
// the two entry points. Nothing below imports them.
const wiring =
  '^src/(gateway|main|wake-cli|scaling|coordination|cluster-view|backend-discovery|ops|gateway-metrics|readiness|reconcile-triggers|shutdown|owner-pod)[.]ts$';

/** @type {import('dependency-cruiser').IConfiguration} */
export default {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Files in src/ import each other in a circle: move the shared part (often a type) into its own file.',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'top-level-helpers-import-no-folder',
      severity: 'error',
      comment:
        'The top-level helpers (errors, clock, config, log, metrics, events, ...) sit below every folder; ' +
        'a type they need from a folder is declared where they use it.',
      from: { path: '^src/[^/]+[.]ts$', pathNot: wiring },
      to: { path: [folders, wiring] },
    },
    {
      name: 'kube-imports-only-top-level-helpers',
      severity: 'error',
      comment:
        'kube/ talks to the API server and knows nothing of backends, proxying, scaling or serving; ' +
        'it reports through events and callbacks, never the logger.',
      from: { path: '^src/kube/' },
      to: { path: ['^src/(proxy|backends|http|scaler|ha)/', '^src/log[.]ts$', wiring] },
    },
    {
      name: 'backends-import-only-kube-and-top-level-helpers',
      severity: 'error',
      comment: 'backends/ says which pods exist and may take a connection; dialling and splicing live in proxy/.',
      from: { path: '^src/backends/' },
      to: { path: ['^src/(proxy|http|scaler|ha)/', wiring] },
    },
    {
      name: 'proxy-imports-no-kube-http-or-ha',
      severity: 'error',
      comment: 'proxy/ routes through backends/ and counts demand through a scaler type; it never calls the API.',
      from: { path: '^src/proxy/' },
      to: { path: ['^src/(kube|http|ha)/', wiring] },
    },
    {
      name: 'proxy-and-http-import-scaler-types-only',
      severity: 'error',
      comment: 'proxy/ and http/ see the scaler only through types; gateway.ts hands them the functions.',
      from: { path: '^src/(proxy|http)/' },
      to: { path: '^src/scaler/', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'http-imports-no-proxy-backends-kube-or-ha',
      severity: 'error',
      comment: 'http/ serves what gateway.ts hands it (readiness, metrics, wake) and reaches into no other layer.',
      from: { path: '^src/http/' },
      to: { path: ['^src/(proxy|backends|kube|ha)/', wiring] },
    },
    {
      name: 'scaler-imports-no-proxy-http-or-wiring',
      severity: 'error',
      comment: 'scaler/ decides and acts from what it is handed; connections and serving are layers above it.',
      from: { path: '^src/scaler/' },
      to: { path: ['^src/(proxy|http)/', wiring] },
    },
    {
      name: 'ha-imports-no-proxy-backends-or-wiring',
      severity: 'error',
      comment: 'ha/ carries the scaler vocabulary between replicas through Leases; it neither routes nor dials.',
      from: { path: '^src/ha/' },
      to: { path: ['^src/(proxy|backends)/', wiring] },
    },
    {
      name: 'scaler-and-ha-one-direction',
      severity: 'error',
      comment: 'ha/ shares state through Leases on top of scaler/ types; scaler/ does not import ha/.',
      from: { path: '^src/scaler/' },
      to: { path: '^src/ha/' },
    },
    {
      name: 'ha-imports-no-http',
      severity: 'error',
      comment: 'ha/ sits below http/: the readiness check type it reports belongs to a lower layer.',
      from: { path: '^src/ha/' },
      to: { path: '^src/http/' },
    },
  ],
  options: {
    includeOnly: '^src/',
    exclude: { path: '[.]test[.]ts$' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: 'node_modules' },
  },
};
