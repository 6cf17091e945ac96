// The explain form: the same question and the same answer as `ambit explain [-n NS] SRC DST:PORT`,
// asked of the agents through the controller. The verdict, the deciding policy and rule, and the
// printed lines of the command.

import { useState } from 'preact/hooks';
import { type ApiError, postJson, usePoll } from '../api.js';
import type { ExplainResult } from '../types.js';
import { ErrorBanner, Pill } from './common.js';

interface Directory {
  pods: { namespace: string; name: string }[];
  services: { namespace: string; name: string; clusterIP: string }[];
  workloads: { namespace: string; name: string }[];
}

export function ExplainPage() {
  const dir = usePoll<Directory>('/api/workloads', 15_000);
  const [namespace, setNamespace] = useState('');
  const [source, setSource] = useState('');
  const [destination, setDestination] = useState('');
  const [busy, setBusy] = useState(false);
  const [answer, setAnswer] = useState<(ExplainResult & { lines: string[] }) | undefined>();
  const [error, setError] = useState<ApiError | undefined>();
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      setAnswer(await postJson<ExplainResult & { lines: string[] }>('/api/explain', { namespace, source, destination }));
    } catch (err) {
      setAnswer(undefined);
      setError(err as ApiError);
    } finally {
      setBusy(false);
    }
  };
  const decision = answer?.inbound?.decision;
  return (
    <section aria-labelledby="explain-title">
      <header class="page-head">
        <h2 id="explain-title">Explain a connection</h2>
        <span class="muted">as `ambit explain -n NAMESPACE SOURCE DESTINATION:PORT`; nothing connects</span>
      </header>
      <form class="explain" onSubmit={(e) => void submit(e)} data-testid="explain-form">
        <label>
          source namespace
          <input name="namespace" value={namespace} placeholder="client" list="namespaces" onInput={(e) => setNamespace((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          source (pod, deploy/NAME or NS/POD)
          <input name="source" required value={source} placeholder="deploy/client" list="sources" onInput={(e) => setSource((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          destination:port (NAME.NAMESPACE, IP or NS/POD)
          <input name="destination" required value={destination} placeholder="web.shop:80" list="destinations" onInput={(e) => setDestination((e.target as HTMLInputElement).value)} />
        </label>
        <button type="submit" disabled={busy}>
          {busy ? 'asking the agents…' : 'Explain'}
        </button>
        <datalist id="namespaces">{[...new Set(dir.data?.pods.map((p) => p.namespace) ?? [])].map((n) => <option value={n} />)}</datalist>
        <datalist id="sources">
          {dir.data?.workloads.map((w) => <option value={`deploy/${w.name}`}>{`${w.namespace}/${w.name}`}</option>)}
          {dir.data?.pods.map((p) => <option value={`${p.namespace}/${p.name}`} />)}
        </datalist>
        <datalist id="destinations">{dir.data?.services.map((s) => <option value={`${s.name}.${s.namespace}:80`}>{s.clusterIP}</option>)}</datalist>
      </form>
      <ErrorBanner error={error} what="the explanation" />
      {answer && (
        <div class="explain-answer" data-testid="explain-answer" data-verdict={answer.verdict} data-policy={decision?.policy ?? ''}>
          <p>
            {answer.source} → {answer.destination}: <Pill kind={answer.verdict === 'allowed' ? 'good' : 'bad'}>{answer.verdict.toUpperCase()}</Pill>
            {decision?.policy && (
              <>
                {' '}
                by policy <strong data-testid="explain-policy">{decision.policy}</strong>
                {decision.rule !== undefined ? ` rule ${decision.rule}` : ''}
              </>
            )}
          </p>
          <pre data-testid="explain-output">{answer.lines.join('\n')}</pre>
        </div>
      )}
    </section>
  );
}
