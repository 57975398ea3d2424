/** The HTTP status of a failed Kubernetes API call, when there was a response at all. */
export function apiStatus(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const candidate =
    (error as { code?: unknown; statusCode?: unknown }).code ?? (error as { statusCode?: unknown }).statusCode;
  return typeof candidate === 'number' && candidate >= 100 && candidate < 600 ? candidate : undefined;
}

/** One line for logs: the API server's own message when it sent one, else the error's. */
export function apiMessage(error: unknown): string {
  if (typeof error === 'object' && error !== null) {
    const body = (error as { body?: unknown }).body;
    const parsed = typeof body === 'string' ? safeJson(body) : body;
    if (parsed && typeof parsed === 'object' && typeof (parsed as { message?: unknown }).message === 'string') {
      return (parsed as { message: string }).message;
    }
    if (error instanceof Error) {
      const cause = (error as { cause?: unknown }).cause;
      const causeText = cause instanceof Error ? `: ${cause.message}` : '';
      return `${error.message.split('\n')[0] ?? error.message}${causeText}`;
    }
  }
  return String(error);
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
