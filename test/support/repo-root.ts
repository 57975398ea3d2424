// The repository's root directory, for tests, the E2E, benchmarks and scripts that read shipped files or run scripts.
import path from 'node:path';

export const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
