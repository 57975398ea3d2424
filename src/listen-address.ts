// Listen addresses in Go's "host:port" form: ":8080", "0.0.0.0:8080", "[::1]:8080", "localhost:0".
export interface ListenAddress {
  /** undefined means every interface, like Go's ":8080". */
  host: string | undefined;
  port: number;
}

export function parseListenAddress(text: string): ListenAddress {
  const match = /^(?:\[([0-9a-fA-F:.%a-zA-Z]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim());
  if (!match) throw new Error('expected host:port, for example ":8080" or "127.0.0.1:8080"');
  const port = Number(match[3]);
  if (port > 65535) throw new Error(`port ${port} out of range 0-65535`);
  const host = match[1] ?? match[2];
  return { host: host === '' ? undefined : host, port };
}

export function formatListenAddress(address: ListenAddress): string {
  if (address.host === undefined) return `:${address.port}`;
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}
