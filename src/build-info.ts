import { readFileSync } from 'node:fs';

// Replaced by scripts/bundle.ts (esbuild define) with the package version and the git revision it was built from.
declare const BKA_BUILD_VERSION: string | undefined;
declare const BKA_BUILD_REVISION: string | undefined;

/** What `--version`, the startup log line and bka_build_info report. */
export interface BuildInfo {
  version: string;
  revision: string;
}

/** Run from the sources (tests, `node src/main.ts`) there is no bundle: the version is package.json's, the revision unknown. */
export const buildInfo: BuildInfo =
  typeof BKA_BUILD_VERSION === 'string' && typeof BKA_BUILD_REVISION === 'string'
    ? { version: BKA_BUILD_VERSION, revision: BKA_BUILD_REVISION }
    : {
        version: (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string })
          .version,
        revision: 'unknown',
      };

export function describeBuild(info: BuildInfo = buildInfo): string {
  return `buildkitd-autoscaler ${info.version} (revision ${info.revision})`;
}
