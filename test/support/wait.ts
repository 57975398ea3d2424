// Waiting in tests: every layer polls for a condition with a generous deadline instead of sleeping a fixed time.

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `check` until it returns a value other than `undefined` or `false`, and resolves with that value. A
 * check that throws counts as not yet; past the deadline the error names `what` and the last thrown error.
 * `giveUp` ends the wait at once when it returns a reason (the process under test exited, say), since no
 * later check could succeed.
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 60_000,
  intervalMs = 100,
  giveUp: () => string | undefined = () => undefined,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    const reason = giveUp();
    if (reason !== undefined) throw new Error(`gave up waiting for ${what}: ${reason}`);
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > end) {
      const why =
        lastError === undefined
          ? ''
          : `: ${lastError instanceof Error ? lastError.message : JSON.stringify(lastError)}`;
      throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}${why}`, { cause: lastError });
    }
    await sleep(intervalMs);
  }
}
