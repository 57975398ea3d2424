// mTLS material for a buildkitd behind the gateway, made with openssl: a CA, a server certificate for
// the builder pods' names, a client certificate, and the Secret that carries the server's files.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { leaf, makeCa } from '../cluster/index.ts';

/** Where buildkitd reads its files inside the pod (the Secret's keys are the file names). */
export const BUILDKITD_TLS_DIR = '/certs';
/** The name clients ask for (--tlsservername): the gateway forwards TLS untouched, so no address of its own matters. */
export const BUILDKITD_TLS_SERVER_NAME = 'buildkitd';

export interface BuildkitTls {
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A Secret named `name` with ca.pem, cert.pem and key.pem for buildkitd's --tlscacert/--tlscert/--tlskey. */
  secretYaml(name: string): string;
}

/** Certificates for the buildkitd StatefulSet `statefulSet` (headless Service `service`) in `namespace`. */
export async function makeBuildkitTls(
  dir: string,
  namespace: string,
  statefulSet = 'buildkitd',
  service = `${statefulSet}-headless`,
): Promise<BuildkitTls> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = { caCert: join(dir, 'ca.crt'), caKey: join(dir, 'ca.key') };
  await makeCa(ca, 'bka-test-buildkit-ca');
  // Pod IPs are unknown before the pods exist: the certificate names the pods and the name clients ask for.
  const sans = [
    BUILDKITD_TLS_SERVER_NAME,
    `${statefulSet}-0`,
    `*.${service}`,
    `*.${service}.${namespace}.svc`,
    `*.${service}.${namespace}.svc.cluster.local`,
  ]
    .map((name) => `DNS:${name}`)
    .join(',');
  await leaf(
    dir,
    'server',
    `/CN=${BUILDKITD_TLS_SERVER_NAME}`,
    `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${sans}\n`,
    ca,
  );
  await leaf(
    dir,
    'client',
    '/CN=bka-test-client',
    'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n',
    ca,
  );
  const files = {
    caCert: ca.caCert,
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    clientCert: join(dir, 'client.crt'),
    clientKey: join(dir, 'client.key'),
  };
  const b64 = (file: string) => readFileSync(file).toString('base64');
  return {
    ...files,
    secretYaml: (name) => `apiVersion: v1
kind: Secret
metadata: {name: ${name}}
type: Opaque
data:
  ca.pem: ${b64(files.caCert)}
  cert.pem: ${b64(files.serverCert)}
  key.pem: ${b64(files.serverKey)}
`,
  };
}

/** buildkitd's flags for the files of the Secret mounted at BUILDKITD_TLS_DIR. */
export const buildkitdTlsArgs = [
  '--tlscacert',
  `${BUILDKITD_TLS_DIR}/ca.pem`,
  '--tlscert',
  `${BUILDKITD_TLS_DIR}/cert.pem`,
  '--tlskey',
  `${BUILDKITD_TLS_DIR}/key.pem`,
];

/** buildctl's (and the buildx remote driver's) client flags. */
export function buildctlTlsArgs(tls: BuildkitTls): string[] {
  return [
    '--tlscacert',
    tls.caCert,
    '--tlscert',
    tls.clientCert,
    '--tlskey',
    tls.clientKey,
    '--tlsservername',
    BUILDKITD_TLS_SERVER_NAME,
  ];
}

/** A TLS handshake (through the gateway) with the CA but no client certificate: the server's certificate, then how it ended. */
export function handshakeWithoutClientCert(
  host: string,
  port: number,
  caCert: string,
): Promise<{ peerFingerprint: string | undefined; error: string | undefined }> {
  return new Promise((resolve) => {
    const socket = tlsConnect({
      host,
      port,
      servername: BUILDKITD_TLS_SERVER_NAME,
      ca: readFileSync(caCert),
      ALPNProtocols: ['h2'],
    });
    let peerFingerprint: string | undefined;
    let error: string | undefined;
    socket.on('secureConnect', () => {
      peerFingerprint = socket.getPeerX509Certificate()?.fingerprint256;
      // TLS 1.3: the server checks the client's (missing) certificate after the client's handshake is done;
      // its verdict arrives as an alert on the first read.
      socket.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    });
    socket.on('error', (e: Error) => (error = e.message));
    socket.on('close', () => resolve({ peerFingerprint, error }));
    socket.resume();
  });
}
