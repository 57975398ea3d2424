import type { Socket } from 'node:net';
import { reusableReadsOf } from './reusable-reads.ts';

const RecordType = { changeCipherSpec: 20, alert: 21, handshake: 22, applicationData: 23 } as const;
/** TLS 1.3 encrypts alerts: 2 alert bytes + 1 inner content type + a 16-byte AEAD tag. */
const ENCRYPTED_ALERT_MAX = 2 + 1 + 16;
/** A refusal answers the client's first or second flight; a third answer means the handshake went through. */
const WATCHED_TURNS = 2;

/**
 * Tells a backend that refused a client's TLS handshake (buildkitd's mTLS and a client without a
 * certificate) from one that died mid-stream. The gateway passes TLS through untouched, so it judges from
 * record headers alone: the client opened with a TLS handshake record, and the backend's last answer (its
 * bytes since the client last spoke) was its first or second one and held nothing but alert records:
 * plaintext alerts up to TLS 1.2, records no longer than an encrypted alert in TLS 1.3 (any HTTP/2 frame
 * is longer). A second answer with anything else means the handshake went through. Only the handshake's
 * record headers are read; then the listeners are gone. Not recognised: a refusal after a TLS 1.3
 * HelloRetryRequest (a third answer), which stays BKA_BACKEND_LOST.
 * Start with watchTlsRefusal() and ask backendRefusedTls() at the end: watches are found by backend
 * socket, so a connection past its handshake (or not TLS at all) keeps no watch while it is spliced.
 */
class TlsRefusalWatch {
  private readonly client: Socket;
  private readonly backend: Socket;
  private clientSpokeTls: boolean | undefined;
  private clientSpokeSinceBackend: boolean;
  /** Set once this connection cannot be a handshake refusal: not TLS, or past the handshake. */
  private ruledOut = false;
  private backendTurns = 0;
  private turnRecords = 0;
  private turnOnlyAlerts = true;
  // A pool slice: a zeroed Buffer of its own would cost every connection an ArrayBuffer; bytes are written before they are read.
  private readonly header = Buffer.allocUnsafe(5);
  private headerFilled = 0;
  private bodyLeft = 0;

  private readonly onClientData = (chunk: Buffer) => {
    this.clientSpokeTls ??= chunk[0] === RecordType.handshake;
    this.clientSpokeSinceBackend = true;
    if (!this.clientSpokeTls) this.ruleOut();
  };

  private readonly onBackendData = (chunk: Buffer) => {
    if (this.clientSpokeSinceBackend) {
      this.backendTurns += 1;
      this.turnRecords = 0;
      this.turnOnlyAlerts = true;
      this.clientSpokeSinceBackend = false;
    }
    if (this.backendTurns > WATCHED_TURNS || this.clientSpokeTls !== true) return this.ruleOut();
    for (let offset = 0; offset < chunk.length && !this.ruledOut;) {
      if (this.bodyLeft > 0) {
        const skipped = Math.min(this.bodyLeft, chunk.length - offset);
        this.bodyLeft -= skipped;
        offset += skipped;
        continue;
      }
      const copied = chunk.copy(this.header, this.headerFilled, offset, offset + 5 - this.headerFilled);
      this.headerFilled += copied;
      offset += copied;
      if (this.headerFilled === 5) this.onRecordHeader(this.header[0]!, this.header.readUInt16BE(3));
    }
  };

  constructor(client: Socket, backend: Socket, clientHead: Buffer) {
    this.client = client;
    this.backend = backend;
    this.clientSpokeSinceBackend = clientHead.length > 0;
    if (clientHead.length > 0) this.clientSpokeTls = true;
    // A socket read into a reused buffer emits no 'data': its reads are observed instead.
    observeReads(client, this.onClientData);
    observeReads(backend, this.onBackendData);
  }

  /** True if the backend's last word, during the handshake, was a TLS alert: it refused this client. */
  get backendRefusedHandshake(): boolean {
    return !this.ruledOut && this.clientSpokeTls === true && this.turnRecords > 0 && this.turnOnlyAlerts;
  }

  stop(): void {
    this.client.off('data', this.onClientData);
    this.backend.off('data', this.onBackendData);
    reusableReadsOf(this.client)?.observe(undefined);
    reusableReadsOf(this.backend)?.observe(undefined);
  }

  private ruleOut(): void {
    this.ruledOut = true;
    this.stop();
    watching.delete(this.backend);
  }

  private onRecordHeader(type: number, length: number): void {
    this.headerFilled = 0;
    this.bodyLeft = length;
    this.turnRecords += 1;
    if (type < RecordType.changeCipherSpec || type > RecordType.applicationData) return this.ruleOut(); // not TLS after all
    const alertShaped =
      type === RecordType.alert || (type === RecordType.applicationData && length <= ENCRYPTED_ALERT_MAX);
    if (alertShaped) return;
    this.turnOnlyAlerts = false;
    // Anything but an alert after the client's second flight (a session ticket, HTTP/2 frames): the handshake was accepted.
    if (this.backendTurns >= 2) this.ruleOut();
  }
}

/** Watches still undecided, by backend socket; a watch leaves once ruled out. */
const watching = new WeakMap<Socket, TlsRefusalWatch>();

/**
 * Starts watching a spliced connection's handshake. `clientHead` is what the client sent while it was
 * held, already on its way to the backend: when it is not a TLS handshake record there is nothing to watch.
 */
export function watchTlsRefusal(client: Socket, backend: Socket, clientHead: Buffer): void {
  if (clientHead.length > 0 && clientHead[0] !== RecordType.handshake) return;
  watching.set(backend, new TlsRefusalWatch(client, backend, clientHead));
}

/** Ends the watch on this backend socket's connection: true if its backend refused the client's TLS handshake. */
export function backendRefusedTls(backend: Socket): boolean {
  const watch = watching.get(backend);
  if (!watch) return false;
  watching.delete(backend);
  watch.stop();
  return watch.backendRefusedHandshake;
}

function observeReads(socket: Socket, observer: (chunk: Buffer) => void): void {
  const reads = reusableReadsOf(socket);
  if (reads) reads.observe(observer);
  else socket.on('data', observer);
}
