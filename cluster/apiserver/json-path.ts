// The JSONPath of a CRD's additionalPrinterColumns, as kubectl's columns evaluate it (k8s.io/client-go
// util/jsonpath), in the subset CRDs use: `.a.b`, `.a[0]`, `.a[*].b`, `.a['key.with.dots']` and
// the filter `.a[?(@.type=="Ready")].status`. Anything else is refused when the CRD is written.

type Step = { field: string } | { index: number } | { all: true } | { filter: { path: Step[]; value: string; negate: boolean } };

/** The steps of `path`; throws an Error naming what it cannot read. */
export function parseJsonPath(path: string): Step[] {
  const text = path.startsWith('{') && path.endsWith('}') ? path.slice(1, -1) : path;
  const steps: Step[] = [];
  let i = 0;
  const fail = (why: string): never => {
    throw new Error(`${why} at character ${i + 1} of ${JSON.stringify(path)}`);
  };
  while (i < text.length) {
    const c = text[i]!;
    if (c === '.') {
      const m = /^[A-Za-z0-9_-]+/.exec(text.slice(i + 1));
      if (!m) fail('expected a field name');
      steps.push({ field: m![0] });
      i += 1 + m![0].length;
    } else if (c === '[') {
      const end = text.indexOf(']', i);
      if (end < 0) fail('unclosed [');
      let inner = text.slice(i + 1, end);
      // A filter may hold a ']' only inside its quoted value; none of the CRDs ambit knows needs one.
      if (inner === '*') steps.push({ all: true });
      else if (/^\d+$/.test(inner)) steps.push({ index: Number(inner) });
      else if (/^'[^']*'$/.test(inner) || /^"[^"]*"$/.test(inner)) steps.push({ field: inner.slice(1, -1) });
      else if (inner.startsWith('?(') && inner.endsWith(')')) {
        inner = inner.slice(2, -1);
        const m = /^@((?:\.[A-Za-z0-9_-]+)+)\s*(==|!=)\s*(?:"([^"]*)"|'([^']*)'|([A-Za-z0-9_.-]+))$/.exec(inner);
        if (!m) fail('expected a filter ?(@.field=="value")');
        steps.push({ filter: { path: parseJsonPath(m![1]!), value: m![3] ?? m![4] ?? m![5]!, negate: m![2] === '!=' } });
      } else fail('expected [n], [*], [\'key\'] or [?(...)]');
      i = end + 1;
    } else fail(`unexpected ${JSON.stringify(c)}`);
  }
  return steps;
}

/** Every value `steps` reach in `root`. */
export function evaluate(steps: Step[], root: unknown): unknown[] {
  let current: unknown[] = [root];
  for (const step of steps) {
    const next: unknown[] = [];
    for (const v of current) {
      if ('field' in step) {
        if (v && typeof v === 'object' && !Array.isArray(v) && Object.hasOwn(v, step.field)) next.push((v as Record<string, unknown>)[step.field]);
      } else if ('index' in step) {
        if (Array.isArray(v) && step.index < v.length) next.push(v[step.index]);
      } else if ('all' in step) {
        if (Array.isArray(v)) next.push(...v);
        else if (v && typeof v === 'object') next.push(...Object.values(v));
      } else if (Array.isArray(v)) {
        const f = step.filter;
        for (const item of v) {
          const got = evaluate(f.path, item);
          const match = got.some((x) => String(x) === f.value);
          if (match !== f.negate) next.push(item);
        }
      }
    }
    current = next;
  }
  return current;
}

/** A column's cell as kubectl prints it: several results joined by commas, objects as JSON, nothing as an empty cell. */
export function cellOf(steps: Step[], obj: unknown): unknown {
  const values = evaluate(steps, obj).filter((v) => v !== undefined && v !== null);
  if (values.length === 0) return null;
  if (values.length === 1 && typeof values[0] !== 'object') return values[0];
  return values.map((v) => (typeof v === 'object' ? JSON.stringify(v) : String(v))).join(',');
}
