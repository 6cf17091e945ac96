// The certificates page: the CA's roots (the trust bundle agents get) and every workload
// certificate the agents hold, with how long each has left. Workload SVIDs are short-lived and
// renewed before expiry, so a short time left is normal there; a root close to its end is not.

import { usePoll } from '../api.js';
import { span } from '../format.js';
import type { CertificateView, WorkloadCertificateView } from '../types.js';
import { ErrorBanner, Pill, Updated } from './common.js';

interface Certificates {
  roots: CertificateView[];
  workloads: WorkloadCertificateView[];
  errors: { node: string; message: string }[];
}

export function CertificatesPage() {
  const r = usePoll<Certificates>('/api/certificates', 10_000);
  return (
    <section aria-labelledby="certs-title">
      <header class="page-head">
        <h2 id="certs-title">Certificates</h2>
        <Updated at={r.at} />
      </header>
      <ErrorBanner error={r.error} what="the certificates" />
      {r.data?.errors.map((e) => (
        <div class="banner" role="alert">
          agent of {e.node}: {e.message}
        </div>
      ))}
      {r.data && (
        <>
          <h3>CA roots (trust bundle)</h3>
          <table class="grid" data-testid="roots">
            <thead>
              <tr>
                <th>subject</th>
                <th>serial</th>
                <th>not after</th>
                <th>expires in</th>
                <th>SHA-256 fingerprint</th>
              </tr>
            </thead>
            <tbody>
              {r.data.roots.map((c) => (
                <tr key={c.serial}>
                  <td>{c.subject}</td>
                  <td class="mono">{c.serial.slice(0, 16)}…</td>
                  <td>{c.notAfter}</td>
                  <td>
                    <Pill kind={c.expiresInSeconds < 30 * 86_400 ? 'bad' : c.expiresInSeconds < 180 * 86_400 ? 'warn' : 'good'}>{span(c.expiresInSeconds)}</Pill>
                  </td>
                  <td class="mono small">{c.fingerprint256}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <h3>Workload certificates (SVIDs), per agent</h3>
          {!r.data.workloads.length ? (
            <p class="empty">No agent holds a workload certificate: no pod is enrolled yet.</p>
          ) : (
            <table class="grid" data-testid="workload-certs">
              <thead>
                <tr>
                  <th>node</th>
                  <th>identity</th>
                  <th>state</th>
                  <th>serial</th>
                  <th>not after</th>
                  <th>expires in</th>
                </tr>
              </thead>
              <tbody>
                {r.data.workloads.map((c) => (
                  <tr key={`${c.node} ${c.identity}`}>
                    <td>{c.node}</td>
                    <td class="mono">{c.identity}</td>
                    <td>{c.lastError ? <Pill kind="bad">{`${c.state ?? '?'}: ${c.lastError}`}</Pill> : c.state ?? '-'}</td>
                    <td class="mono">{c.serial ? `${c.serial.slice(0, 16)}…` : '-'}</td>
                    <td>{c.notAfter ?? '-'}</td>
                    <td>{c.expiresInSeconds === undefined ? '-' : <Pill kind={c.expiresInSeconds < 600 ? 'warn' : 'good'}>{span(c.expiresInSeconds)}</Pill>}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
    </section>
  );
}
