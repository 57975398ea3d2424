import type { Backend } from './backend-set.ts';

/**
 * Order in which to try backends for a new connection: lowest ordinal first. The StatefulSet controller
 * removes the highest ordinal first on scale-down, so packing onto low ordinals lets high ones drain
 * and go away without cutting a build. Later entries are the fallbacks when a dial fails.
 */
export function dialOrder(backends: readonly Backend[], recentlyFailed: ReadonlySet<string> = new Set()): Backend[] {
  return [...backends].sort((a, b) => {
    const failedA = recentlyFailed.has(a.key) ? 1 : 0;
    const failedB = recentlyFailed.has(b.key) ? 1 : 0;
    return failedA - failedB || a.ordinal - b.ordinal;
  });
}
