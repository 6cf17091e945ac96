// What the agents say they capture, written where the cluster can read it: on each Pod, as Istio's
// CNI node agent marks a pod whose traffic it redirects (`ambient.istio.io/redirection: enabled`),
// plus ambit's reason when the agent could not (`ambit.dev/capture-failure`). The kubelet waits
// for the mark before it starts an enrolled pod's containers, `ambit status` and `kubectl get pod
// -o yaml` show it. The replica an agent is connected to writes its node's pods (an agent talks to
// one replica at a time); writes are merge patches of the two annotations only, made when they differ.

import type { KubeClient } from '../../shared/kube/client.js';
import { KubeApiError } from '../../shared/kube/client.js';
import { resourceKind } from '../../shared/kube/paths.js';
import type { Logger } from '../../shared/log.js';
import { errorMessage } from '../../shared/errors.js';
import type { Pod } from '../../shared/resources/types.js';
import { captureFailureAnnotation, redirectionAnnotation } from '../../shared/enrollment.js';
import type { ClusterReader } from '../kube/view.js';

export interface CaptureReport {
  /** `namespace/pod` of the pods the node's agent captures. */
  captured: ReadonlySet<string>;
  /** `namespace/pod` to why its capture failed. */
  failed: Readonly<Record<string, string>>;
}

export class CaptureAnnotator {
  private readonly pending = new Map<string, CaptureReport>();
  private running: Promise<void> | undefined;
  /**
   * What this replica last wrote on each pod. The informers' cache may not have seen that write
   * yet: a cache that still shows what the next report wants does not prove the Pod says so.
   */
  private readonly written = new Map<string, string>();

  constructor(
    private readonly kube: KubeClient,
    private readonly cluster: ClusterReader,
    private readonly log: Logger,
  ) {}

  /** A node's agent reported its captures: its pods' annotations are brought in line (the latest report wins). */
  report(node: string, r: CaptureReport): void {
    this.pending.set(node, r);
    this.running ??= this.drain().finally(() => (this.running = undefined));
  }

  /** Resolves once every report so far is written (for tests). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    for (const [node, r] of this.pending) {
      this.pending.delete(node);
      for (const pod of this.cluster.list('Pod') as Pod[]) {
        if (pod.spec.nodeName !== node) continue;
        const key = `${pod.metadata.namespace}/${pod.metadata.name}`;
        const want = { [redirectionAnnotation]: r.captured.has(key) ? 'enabled' : null, [captureFailureAnnotation]: r.failed[key] ?? null };
        const have = pod.metadata.annotations ?? {};
        const wanted = JSON.stringify(want);
        const wroteOther = this.written.has(key) && this.written.get(key) !== wanted;
        if (!wroteOther && Object.entries(want).every(([k, v]) => (have[k] ?? null) === v)) continue;
        try {
          await this.kube.patch(resourceKind('Pod'), pod.metadata.namespace!, pod.metadata.name, { metadata: { annotations: want } }, 'merge');
          this.written.set(key, wanted);
        } catch (err) {
          // Gone meanwhile: nothing to mark.
          if (err instanceof KubeApiError && err.status === 404) {
            this.written.delete(key);
            continue;
          }
          // The kubelet holds the pod until it is marked, and the agent reports only changes: try
          // this node's report again shortly, unless a newer one comes first.
          this.log.warn({ pod: key, err: errorMessage(err) }, 'could not write the capture annotation; trying again in 1 s');
          setTimeout(() => this.pending.has(node) || this.report(node, r), 1000).unref();
          break;
        }
      }
    }
    // Pods that are gone are forgotten.
    for (const key of this.written.keys()) {
      const [namespace, name] = key.split('/');
      if (!this.cluster.get('Pod', namespace!, name!)) this.written.delete(key);
    }
  }
}
