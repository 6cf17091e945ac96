// Validating admission webhooks, called as the Kubernetes API server calls them: for a create,
// update or delete that a registered ValidatingWebhookConfiguration's rules, namespaceSelector and
// objectSelector match, an admission.k8s.io/v1 AdmissionReview is POSTed over HTTPS to the
// webhook's URL (its server checked against caBundle), within timeoutSeconds; a denial becomes the
// client's error, a failure to call follows failurePolicy, warnings go back to the client. The
// write itself is the caller's; nothing is stored unless every webhook allows it.

import { randomUUID } from 'node:crypto';
import { request } from 'node:https';
import type { Store } from '../../controller/store/store.js';
import type { Logger } from '../../shared/log.js';
import type { Resource } from '../../shared/resources/types.js';
import type { WebhookClientConfig } from '../../shared/resources/webhook-configurations.js';
import { ApiError, internal } from './errors.js';
import type { ApiResource } from './routes.js';
import type { UserInfo } from './tokens.js';

export type Operation = 'CREATE' | 'UPDATE' | 'DELETE';

/** One write, as admission sees it. */
export interface AdmissionAttributes {
  operation: Operation;
  resource: ApiResource;
  namespace: string | undefined;
  name: string;
  /** The object as it would be stored (none for a delete). */
  object: Resource | undefined;
  /** The stored object (none for a create). */
  oldObject: Resource | undefined;
  dryRun: boolean;
  user: UserInfo;
  /** CreateOptions, UpdateOptions, PatchOptions or DeleteOptions, as the request gave them. */
  options: Record<string, unknown>;
}

/** What decides whether a webhook is asked: the write, and the labels of its object and old object. */
export interface MatchInput {
  operation: Operation;
  resource: ApiResource;
  namespace: string | undefined;
  /** The labels of the object and the old object, of those the write has (a create has no old one). */
  labels: Record<string, string>[];
}

interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }[];
}

interface Rule {
  apiGroups?: string[];
  apiVersions?: string[];
  resources?: string[];
  operations?: string[];
  scope?: '*' | 'Cluster' | 'Namespaced';
}

interface Webhook {
  name: string;
  clientConfig: WebhookClientConfig;
  rules?: Rule[];
  failurePolicy?: 'Fail' | 'Ignore';
  namespaceSelector?: LabelSelector;
  objectSelector?: LabelSelector;
  timeoutSeconds?: number;
}

/** Kubernetes never sends webhook configurations to webhooks, so a bad webhook cannot lock itself in. */
const exempt = new Set(['ValidatingWebhookConfiguration', 'MutatingWebhookConfiguration']);

function selects(selector: LabelSelector | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector) return true;
  const l = labels ?? {};
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (l[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(l, e.key);
    const ok = e.operator === 'Exists' ? has : e.operator === 'DoesNotExist' ? !has : e.operator === 'In' ? has && (e.values ?? []).includes(l[e.key]!) : !has || !(e.values ?? []).includes(l[e.key]!);
    if (!ok) return false;
  }
  return true;
}

/** Kubernetes' rule matcher: "*" any group, version or operation; resources "x", "*", "x/sub", "*\/*". */
function ruleMatches(rule: Rule, a: MatchInput): boolean {
  const any = (list: string[] | undefined, v: string) => (list ?? []).some((x) => x === '*' || x === v);
  const r = a.resource;
  const scope = rule.scope ?? '*';
  if (scope !== '*' && (scope === 'Namespaced') !== r.namespaced) return false;
  if (!any(rule.operations, a.operation) || !any(rule.apiGroups, r.group) || !any(rule.apiVersions, r.version)) return false;
  return (rule.resources ?? []).some((x) => {
    const [res, sub = ''] = x.split('/', 2) as [string, string?];
    return (res === '*' || res === r.plural) && (sub === '*' || sub === '');
  });
}

export type { Webhook };

export class ValidatingWebhooks {
  constructor(
    private readonly store: Store,
    private readonly log: Logger,
  ) {}

  /** The registered webhooks that would be asked about `a`, each with its configuration's name. */
  matching(a: MatchInput): Webhook[] {
    if (exempt.has(a.resource.kind)) return [];
    const configurations = this.store.list('ValidatingWebhookConfiguration') as (Resource & { webhooks?: Webhook[] })[];
    const namespaceLabels = () => (a.resource.kind === 'Namespace' ? a.labels[0] : this.store.get('Namespace', '', a.namespace ?? '')?.metadata.labels);
    return configurations.flatMap((c) =>
      (c.webhooks ?? []).filter(
        (h) =>
          (h.rules ?? []).some((rule) => ruleMatches(rule, a)) &&
          // A cluster-scoped object (other than a Namespace) has no namespace to select on.
          (!(a.resource.namespaced || a.resource.kind === 'Namespace') || selects(h.namespaceSelector, namespaceLabels())) &&
          // The object or the old object: either matching is enough, as in Kubernetes.
          a.labels.some((l) => selects(h.objectSelector, l)),
      ),
    );
  }

  /**
   * Asks every webhook in `hooks` about `a`, all at once, as the real server does; resolves with
   * their warnings when all allow it, throws the first denial (or failure, under Fail) as the
   * client's error. `warn` receives warnings also when the write is denied.
   */
  async review(hooks: Webhook[], a: AdmissionAttributes, warn: (w: string[]) => void): Promise<void> {
    const outcomes = await Promise.all(hooks.map((h) => this.ask(h, a)));
    for (const o of outcomes) if (o.warnings.length) warn(o.warnings);
    const denied = outcomes.find((o) => o.error);
    if (denied) throw denied.error;
  }

  private async ask(h: Webhook, a: AdmissionAttributes): Promise<{ warnings: string[]; error?: ApiError }> {
    const uid = randomUUID();
    const r = a.resource;
    const review = {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid,
        kind: { group: r.group, version: r.version, kind: r.kind },
        resource: { group: r.group, version: r.version, resource: r.plural },
        requestKind: { group: r.group, version: r.version, kind: r.kind },
        requestResource: { group: r.group, version: r.version, resource: r.plural },
        name: a.name,
        ...(r.namespaced && a.namespace ? { namespace: a.namespace } : {}),
        operation: a.operation,
        userInfo: a.user,
        object: a.object ?? null,
        oldObject: a.oldObject ?? null,
        dryRun: a.dryRun,
        options: a.options,
      },
    };
    const timeoutSeconds = h.timeoutSeconds ?? 10;
    let response: { uid?: string; allowed?: boolean; status?: { code?: number; message?: string; reason?: string; details?: unknown }; warnings?: string[] };
    try {
      const reply = (await post(h.clientConfig, timeoutSeconds, review)) as { apiVersion?: string; kind?: string; response?: typeof response };
      if (reply?.kind !== 'AdmissionReview' || reply.apiVersion !== 'admission.k8s.io/v1' || !reply.response) throw new Error('the webhook answered with no admission.k8s.io/v1 AdmissionReview response');
      response = reply.response;
      if (response.uid !== uid) throw new Error(`expected response.uid=${JSON.stringify(uid)}, got ${JSON.stringify(response.uid ?? '')}`);
    } catch (err) {
      const message = `failed calling webhook ${JSON.stringify(h.name)}: ${(err as Error).message}`;
      if ((h.failurePolicy ?? 'Fail') === 'Ignore') {
        this.log.warn({ webhook: h.name, err: message }, 'webhook failed; failurePolicy Ignore lets the write through');
        return { warnings: [] };
      }
      return { warnings: [], error: internal(message) };
    }
    const warnings = (response.warnings ?? []).filter((w) => typeof w === 'string');
    if (response.allowed === true) return { warnings };
    return { warnings, error: denial(h.name, response.status ?? {}) };
  }
}

/** A webhook's "no", as the client sees it: its code (400 at least) and message behind whose it is. */
function denial(name: string, s: { code?: number; message?: string; reason?: string; details?: unknown }): ApiError {
  const by = `admission webhook ${JSON.stringify(name)} denied the request`;
  const message = s.message ? `${by}: ${s.message}` : s.reason ? `${by}: ${s.reason}` : `${by} without explanation`;
  const code = typeof s.code === 'number' && s.code >= 400 && s.code < 600 ? s.code : 400;
  return new ApiError(code, typeof s.reason === 'string' ? s.reason : '', message, typeof s.details === 'object' && s.details ? (s.details as ApiError['details']) : undefined);
}

/** POSTs `body` to the webhook's URL (with ?timeout=, as the real server adds) and reads its JSON answer. */
function post(config: WebhookClientConfig, timeoutSeconds: number, body: unknown): Promise<unknown> {
  // Stored as a real cluster stores it (what `ambit install` registers), but not callable from here:
  // the call fails, and the webhook's failurePolicy decides, as on a cluster whose Service has no endpoint.
  if (config.service) return Promise.reject(new Error(`the local cluster's API server cannot call a webhook through Service ${config.service.namespace}/${config.service.name} (Services live inside the cluster's network namespaces, the API server outside them; register it by clientConfig.url)`));
  const url = new URL(config.url!);
  url.searchParams.set('timeout', `${timeoutSeconds}s`);
  const data = JSON.stringify(body);
  const ca = config.caBundle ? Buffer.from(config.caBundle, 'base64').toString('utf8') : undefined;
  const target = `Post ${JSON.stringify(url.toString())}`;
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json', 'content-length': Buffer.byteLength(data) }, ...(ca ? { ca } : {}), agent: false });
    const timer = setTimeout(() => req.destroy(new Error('context deadline exceeded')), timeoutSeconds * 1000);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`failed to call webhook: ${target}: ${err.message}`));
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (d: Buffer) => {
        size += d.length;
        // A webhook's answer is small; one that is not is cut off rather than held in memory.
        if (size > 3 * 1024 * 1024) req.destroy(new Error('the response is larger than 3 MiB'));
        else chunks.push(d);
      });
      res.on('end', () => {
        clearTimeout(timer);
        if (res.statusCode !== 200) return reject(new Error(`received invalid webhook response: the server responded with status ${res.statusCode}`));
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        } catch {
          reject(new Error('received invalid webhook response: the body is not JSON'));
        }
      });
    });
    req.end(data);
  });
}
