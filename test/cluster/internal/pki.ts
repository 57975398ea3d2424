// Certificates of the local control plane, made with openssl: a CA, the API server's serving cert,
// an admin client cert in system:masters, and the ServiceAccount token signing key pair.
import fs from 'node:fs';
import path from 'node:path';
import { BRIDGE_IP, SERVICE_IP } from './common.ts';
import { runOk } from '../../support/command.ts';

export interface Pki {
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  adminCert: string;
  adminKey: string;
  saKey: string;
  saPub: string;
}

export function pkiFiles(dir: string): Pki {
  const f = (n: string) => path.join(dir, n);
  return {
    caCert: f('ca.crt'),
    caKey: f('ca.key'),
    serverCert: f('apiserver.crt'),
    serverKey: f('apiserver.key'),
    adminCert: f('admin.crt'),
    adminKey: f('admin.key'),
    saKey: f('sa.key'),
    saPub: f('sa.pub'),
  };
}

const DAYS = '3650';

/** Signs <dir>/<name>.crt (key <dir>/<name>.key) with the CA; `ext` holds the x509v3 extensions. */
export async function leaf(
  dir: string,
  name: string,
  subj: string,
  ext: string,
  pki: Pick<Pki, 'caCert' | 'caKey'>,
): Promise<void> {
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const extFile = path.join(dir, `${name}.ext`);
  fs.writeFileSync(extFile, ext);
  await runOk('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
  await runOk('openssl', ['req', '-new', '-key', key, '-subj', subj, '-out', csr]);
  await runOk('openssl', [
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    pki.caCert,
    '-CAkey',
    pki.caKey,
    '-CAcreateserial',
    '-days',
    DAYS,
    '-sha256',
    '-extfile',
    extFile,
    '-out',
    path.join(dir, `${name}.crt`),
  ]);
  fs.rmSync(csr);
  fs.rmSync(extFile);
}

/** A self-signed CA (key and certificate at the given paths). */
export async function makeCa(ca: Pick<Pki, 'caCert' | 'caKey'>, commonName: string): Promise<void> {
  await runOk('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', ca.caKey]);
  await runOk('openssl', [
    'req',
    '-x509',
    '-new',
    '-key',
    ca.caKey,
    '-subj',
    `/CN=${commonName}`,
    '-days',
    DAYS,
    '-sha256',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
    '-out',
    ca.caCert,
  ]);
}

/** Creates every file (fresh each time the cluster comes up). */
export async function makePki(dir: string): Promise<Pki> {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const pki = pkiFiles(dir);
  await makeCa(pki, 'bka-local-ca');
  const sans = [
    'IP:127.0.0.1',
    `IP:${BRIDGE_IP}`,
    `IP:${SERVICE_IP}`,
    'DNS:localhost',
    'DNS:kubernetes',
    'DNS:kubernetes.default',
    'DNS:kubernetes.default.svc',
    'DNS:kubernetes.default.svc.cluster.local',
  ].join(',');
  await leaf(
    dir,
    'apiserver',
    '/CN=kube-apiserver',
    `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${sans}\n`,
    pki,
  );
  await leaf(
    dir,
    'admin',
    '/O=system:masters/CN=bka-admin',
    'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n',
    pki,
  );
  await runOk('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', pki.saKey]);
  await runOk('openssl', ['pkey', '-in', pki.saKey, '-pubout', '-out', pki.saPub]);
  return pki;
}

/** A kubeconfig with embedded credentials (client cert or bearer token). */
export function kubeconfigYaml(opts: {
  server: string;
  caCert: string;
  user: string;
  clientCert?: string;
  clientKey?: string;
  token?: string;
  namespace?: string;
}): string {
  const b64 = (file: string) => fs.readFileSync(file).toString('base64');
  const userLines: string[] = [];
  if (opts.clientCert && opts.clientKey) {
    userLines.push(
      `    client-certificate-data: ${b64(opts.clientCert)}`,
      `    client-key-data: ${b64(opts.clientKey)}`,
    );
  }
  if (opts.token) userLines.push(`    token: ${opts.token}`);
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: bka',
    '  cluster:',
    `    server: ${opts.server}`,
    `    certificate-authority-data: ${b64(opts.caCert)}`,
    'users:',
    `- name: ${opts.user}`,
    '  user:',
    ...userLines,
    'contexts:',
    '- name: bka',
    '  context:',
    '    cluster: bka',
    `    user: ${opts.user}`,
    ...(opts.namespace ? [`    namespace: ${opts.namespace}`] : []),
    'current-context: bka',
    '',
  ].join('\n');
}
