// How each setting's text is read and written back: the parsers and formatters of the option table in
// config.ts. A parser throws an Error whose message completes "invalid value ... for --flag / ENV: ".
import { isIP } from 'node:net';
import * as z from 'zod/mini';
import { parseGoDuration } from './duration.ts';
import { parseListenAddress } from './listen-address.ts';

// DNS-1123 rules, as the API server enforces them, so a typo fails at start and not at the first build.
const dns1123Label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const dns1123Subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

// zod/mini: the tree-shakable build of zod, so only the checks used here are bundled.
function fromZod<T>(schema: z.ZodMiniType<T>): (raw: string) => T {
  return (raw) => {
    const result = z.safeParse(schema, raw);
    if (!result.success) throw new Error(result.error.issues[0]?.message ?? 'invalid');
    return result.data;
  };
}

export const dnsLabel = (what: string, max: number) =>
  fromZod(
    z
      .string()
      .check(
        z.minLength(1, `${what} must not be empty`),
        z.maxLength(max, `${what} must be at most ${max} characters`),
        z.regex(dns1123Label, `${what} must be a DNS-1123 label (lowercase letters, digits, "-")`),
      ),
  );
export const dnsSubdomain = (what: string) =>
  fromZod(
    z
      .string()
      .check(
        z.minLength(1, `${what} must not be empty`),
        z.maxLength(253, `${what} must be at most 253 characters`),
        z.regex(dns1123Subdomain, `${what} must be a DNS-1123 subdomain (lowercase letters, digits, "-", ".")`),
      ),
  );
export const integer = (min: number, max: number) =>
  fromZod(
    z.pipe(
      z.pipe(z.string().check(z.regex(/^\d+$/, 'must be a whole number')), z.transform(Number)),
      z.number().check(z.gte(min, `must be at least ${min}`), z.lte(max, `must be at most ${max}`)),
    ),
  );
export const oneOf = <T extends string>(values: Record<T, T>) => {
  const allowed = Object.keys(values) as T[];
  return (raw: string): T => {
    if ((allowed as string[]).includes(raw)) return raw as T;
    throw new Error(`must be one of ${allowed.join(', ')}`);
  };
};
export const duration = (raw: string): number => {
  const ms = parseGoDuration(raw);
  if (ms < 0) throw new Error('must not be negative');
  return ms;
};
export const positiveDuration = (raw: string): number => {
  const ms = duration(raw);
  if (ms <= 0) throw new Error('must be greater than 0');
  return ms;
};
const byteUnits: Record<string, number> = { '': 1, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 };
// Kubernetes quantity suffixes, so the budget reads like the container's memory limit next to it.
export const byteSize =
  (min: number, max: number) =>
  (raw: string): number => {
    const match = /^(\d+)(Ki|Mi|Gi)?$/.exec(raw);
    if (!match) throw new Error('must be a whole number of bytes, optionally with Ki, Mi or Gi');
    const bytes = Number(match[1]) * (byteUnits[match[2] ?? ''] ?? NaN);
    if (bytes < min) throw new Error(`must be at least ${formatByteSize(min)}`);
    if (bytes > max) throw new Error(`must be at most ${formatByteSize(max)}`);
    return bytes;
  };
export const formatByteSize = (bytes: number): string => {
  for (const unit of ['Gi', 'Mi', 'Ki'] as const)
    if (bytes % (byteUnits[unit] ?? NaN) === 0) return `${bytes / (byteUnits[unit] ?? NaN)}${unit}`;
  return String(bytes);
};
export const listenAddress = (raw: string) => parseListenAddress(raw);
// strconv.ParseBool's spellings, as the Go tool accepted them.
export const boolean = (raw: string): boolean => {
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(raw)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(raw)) return false;
  throw new Error('must be true or false');
};
export const ipAddress = (raw: string) => {
  if (isIP(raw) === 0) throw new Error('must be an IPv4 or IPv6 address');
  return raw;
};
export const nonEmptyPath = (raw: string) => {
  if (raw.trim() === '') throw new Error('must not be empty');
  return raw;
};
