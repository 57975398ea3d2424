// A long-lived client connection to the echo mock through the gateway, line by line, with unique payloads.
import assert from 'node:assert/strict';
import net from 'node:net';
import type { Endpoint } from '../backends.ts';
import type { Context } from './context.ts';

let payloadCounter = 0;
export function payload(): string {
  return `e2e-${process.pid}-${++payloadCounter}-${Math.random().toString(36).slice(2)}\n`;
}

/** One long-lived client connection to the echo mock, line by line. */
export function lineClient(endpoint: Endpoint) {
  const socket = net.connect(endpoint.port, endpoint.host);
  const lines: string[] = [];
  let buffered = '';
  let closedByPeer = false;
  socket.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    const parts = buffered.split('\n');
    buffered = parts.pop() ?? '';
    lines.push(...parts);
  });
  socket.on('end', () => (closedByPeer = true));
  socket.on('error', () => (closedByPeer = true));
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  return {
    lines,
    get closedByPeer() {
      return closedByPeer;
    },
    /** Sends a fresh line and resolves when the same line came back. */
    async echo(ctx: Context, what: string, timeoutMs: number): Promise<void> {
      const line = payload();
      socket.write(line);
      await ctx.timeline.until(what, () => lines.includes(line.trim()) || closedByPeer, timeoutMs);
      assert.ok(lines.includes(line.trim()), `${what}: the connection was closed by the gateway`);
    },
    async close(): Promise<void> {
      socket.destroy();
      await closed;
    },
  };
}
