// Where every controller replica finds the mesh CA's keys: Secrets of the Kubernetes API in the
// controller's namespace, as istiod keeps its own root in `istio-ca-secret` and takes an operator's
// intermediate from `cacerts`. The CA itself (authority.ts) works on a directory; this module
// mirrors the Secret into that directory (mode 0600) and back, and decides who makes the root: the
// leader, when neither Secret exists. Followers reload when the Secret changes (a rotation).

import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { AmbitError } from '../../shared/errors.js';
import type { KubeClient } from '../../shared/kube/client.js';
import { KubeApiError } from '../../shared/kube/client.js';
import { resourceKind } from '../../shared/kube/paths.js';
import type { Resource } from '../../shared/resources/types.js';
import { writeFileAtomic } from '../store/store.js';
import { CertificateAuthority } from './authority.js';

/** The CA's own root (made by the leader on first start), and Istio's name for an operator's intermediate. */
export const caSecretName = 'ambit-ca';
export const pluggedSecretName = 'cacerts';
/** What `cacerts` must hold, as Istio's plug-in CA reads it. */
export const pluggedFiles = ['ca-cert.pem', 'ca-key.pem', 'cert-chain.pem', 'root-cert.pem'];

const Secret = resourceKind('Secret');

interface SecretResource extends Resource {
  type?: string;
  data?: Record<string, string>;
}

export interface CaSecretOptions {
  kube: KubeClient;
  namespace: string;
  /** The directory the CA works in (authority.ts's layout). */
  dir: string;
  trustDomain: string;
  /** Whether this replica leads now; only the leader makes the root. */
  leads: () => boolean;
  /** How long to wait between looks while another replica is to make the root. */
  pollMs?: number;
}

/** A loaded CA and the Secret it came from (its resourceVersion: the one a rotation replaces). */
export interface LoadedCa {
  ca: CertificateAuthority;
  secret: string;
  resourceVersion: string;
}

/** The CA from the API: `cacerts` if an operator made it, else `ambit-ca`, made by the leader if missing. */
export async function loadCa(o: CaSecretOptions): Promise<LoadedCa> {
  for (;;) {
    const plugged = await o.kube.get<SecretResource>(Secret, o.namespace, pluggedSecretName);
    if (plugged) {
      writePlugged(o.dir, plugged);
      return { ca: CertificateAuthority.open(o.dir, o.trustDomain), secret: pluggedSecretName, resourceVersion: plugged.metadata.resourceVersion ?? '' };
    }
    // A `cacerts` deleted since the last start must not keep signing from the directory.
    rmSync(join(o.dir, 'cacerts'), { recursive: true, force: true });
    const own = await o.kube.get<SecretResource>(Secret, o.namespace, caSecretName);
    if (own) {
      writeOwn(o.dir, own);
      return { ca: CertificateAuthority.open(o.dir, o.trustDomain), secret: caSecretName, resourceVersion: own.metadata.resourceVersion ?? '' };
    }
    if (o.leads()) {
      // A root already in the directory (a controller from before the Secret) is kept, not replaced:
      // every certificate out there chains to it.
      const ca = CertificateAuthority.open(o.dir, o.trustDomain);
      try {
        const made = await o.kube.create(Secret, caSecret(o.namespace, o.dir));
        return { ca, secret: caSecretName, resourceVersion: made.metadata.resourceVersion ?? '' };
      } catch (err) {
        // Another replica made it first: take theirs.
        if (!(err instanceof KubeApiError && err.status === 409)) throw err;
      }
    }
    await new Promise((r) => setTimeout(r, o.pollMs ?? 500));
  }
}

/** After a rotation by the leader: the directory's keys replace the Secret's, if nobody changed it meanwhile (409 otherwise). */
export async function saveCa(o: Pick<CaSecretOptions, 'kube' | 'namespace' | 'dir'>, resourceVersion: string): Promise<string> {
  const secret = caSecret(o.namespace, o.dir);
  secret.metadata.resourceVersion = resourceVersion;
  const saved = await o.kube.update(Secret, secret);
  return saved.metadata.resourceVersion ?? '';
}

/** Mirrors a changed `ambit-ca` Secret (another replica rotated) into the directory. */
export function mirrorSecret(dir: string, secret: Resource): void {
  writeOwn(dir, secret as SecretResource);
}

// --- The directory and the Secret's data -------------------------------------------------------------

/** `ambit-ca`'s data: root.key, root.crt and each previous root as previous.<expiry ms>.crt. */
function caSecret(namespace: string, dir: string): SecretResource {
  const data: Record<string, string> = {};
  const b64 = (path: string) => readFileSync(path).toString('base64');
  data['root.key'] = b64(join(dir, 'root.key'));
  data['root.crt'] = b64(join(dir, 'root.crt'));
  const previous = join(dir, 'previous');
  if (existsSync(previous)) for (const f of readdirSync(previous)) data[`previous.${f}`] = b64(join(previous, f));
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name: caSecretName, namespace, labels: { 'app.kubernetes.io/managed-by': 'ambit-controller' } }, type: 'ambit.dev/ca', data };
}

function writeOwn(dir: string, secret: SecretResource): void {
  const data = secret.data ?? {};
  for (const key of ['root.key', 'root.crt']) {
    if (!data[key]) throw new AmbitError('CaConfig', `Secret ${secret.metadata.namespace}/${secret.metadata.name} has no ${key}; delete it to have the controller make a new root (every workload certificate will be reissued)`);
  }
  mkdirSync(dir, { recursive: true });
  const previous = join(dir, 'previous');
  rmSync(previous, { recursive: true, force: true });
  for (const [key, value] of Object.entries(data)) {
    const bytes = Buffer.from(value, 'base64').toString('utf8');
    if (key === 'root.key' || key === 'root.crt') writeFileAtomic(join(dir, key), bytes, 0o600);
    else if (/^previous\.\d+\.crt$/.test(key)) {
      mkdirSync(previous, { recursive: true });
      writeFileAtomic(join(previous, key.slice('previous.'.length)), bytes, 0o600);
    }
  }
}

function writePlugged(dir: string, secret: SecretResource): void {
  const data = secret.data ?? {};
  const missing = pluggedFiles.filter((f) => !data[f]);
  if (missing.length) throw new AmbitError('CaConfig', `Secret ${secret.metadata.namespace}/${pluggedSecretName} lacks ${missing.join(', ')}: Istio's cacerts holds ${pluggedFiles.join(', ')}`);
  const plugged = join(dir, 'cacerts');
  mkdirSync(plugged, { recursive: true });
  for (const f of pluggedFiles) writeFileAtomic(join(plugged, f), Buffer.from(data[f]!, 'base64').toString('utf8'), 0o600);
}

/** The Secret `cacerts` made from files an operator left in a directory (what an installer does with them). */
export function pluggedSecretFrom(dir: string, namespace: string): Resource | undefined {
  if (!existsSync(join(dir, 'ca-cert.pem'))) return undefined;
  const data = Object.fromEntries(pluggedFiles.filter((f) => existsSync(join(dir, f))).map((f) => [f, readFileSync(join(dir, f)).toString('base64')]));
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name: pluggedSecretName, namespace }, type: 'Opaque', data } as SecretResource;
}
