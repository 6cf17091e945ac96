// Compiling a rule's (or a backendRef's) filters into a FilterSet: header names lower-cased, path
// modifiers bound to the rule's prefix, mirror shares as fractions, extension refs kept as written.
// Applying them to a request is plan.ts; a rule whose filters the spec calls invalid is dropped.

import { type BackendRefSpec, resolveBackendRef } from './backends.js';
import type { ExtensionRef, FilterSet, HeaderModifier, MirrorFilter, PathModifier, ProblemReason, ServiceLookup } from './types.js';

/** The ExtensionRef kinds the waypoint resolves; others leave ResolvedRefs False. */
export const knownExtensions: readonly { group: string; kind: string }[] = [{ group: 'ambit.dev', kind: 'FaultInjection' }];

interface HeaderModifierSpec {
  set?: { name: string; value: string }[];
  add?: { name: string; value: string }[];
  remove?: string[];
}
interface PathModifierSpec {
  type: string;
  replaceFullPath?: string;
  replacePrefixMatch?: string;
}
export interface FilterSpec {
  type: string;
  requestHeaderModifier?: HeaderModifierSpec;
  responseHeaderModifier?: HeaderModifierSpec;
  requestRedirect?: { scheme?: 'http' | 'https'; hostname?: string; path?: PathModifierSpec; port?: number; statusCode?: number };
  urlRewrite?: { hostname?: string; path?: PathModifierSpec };
  requestMirror?: { backendRef: BackendRefSpec; percent?: number; fraction?: { numerator: number; denominator?: number } };
  extensionRef?: ExtensionRef;
}

export interface FilterProblem {
  field: string;
  reason: ProblemReason;
  message: string;
}

export interface CompiledFilters {
  set: FilterSet;
  /** Problems that make the rule unusable (it is dropped). */
  fatal: FilterProblem[];
  /** References that cannot be resolved (ResolvedRefs False); the rule stays. */
  refs: FilterProblem[];
}

export const noFilters: FilterSet = Object.freeze({ requestHeaders: [], responseHeaders: [], mirrors: [], extensions: [] });

export interface FilterContext {
  /** `spec.rules[2].filters` or `spec.rules[2].backendRefs[0].filters`. */
  field: string;
  routeNamespace: string;
  services: ServiceLookup;
  /** The rule's only match when it is a PathPrefix (normalized), else undefined. */
  onlyPrefix: string | undefined;
}

export function compileFilters(specs: FilterSpec[] | undefined, ctx: FilterContext): CompiledFilters {
  const fatal: FilterProblem[] = [];
  const refs: FilterProblem[] = [];
  if (!specs || specs.length === 0) return { set: noFilters, fatal, refs };
  const requestHeaders: HeaderModifier[] = [];
  const responseHeaders: HeaderModifier[] = [];
  const mirrors: MirrorFilter[] = [];
  const extensions: ExtensionRef[] = [];
  const set: FilterSet = { requestHeaders, responseHeaders, mirrors, extensions };
  let redirectAt = -1;
  let rewriteAt = -1;
  specs.forEach((f, i) => {
    const field = `${ctx.field}[${i}]`;
    const missing = (key: string) => fatal.push({ field: `${field}.${key}`, reason: 'UnsupportedValue', message: `is required when type is ${f.type}` });
    switch (f.type) {
      case 'RequestHeaderModifier':
      case 'ResponseHeaderModifier': {
        const key = f.type === 'RequestHeaderModifier' ? 'requestHeaderModifier' : 'responseHeaderModifier';
        const spec = f[key];
        if (!spec) return missing(key);
        const mod = compileHeaderModifier(spec, `${field}.${key}`, fatal);
        (f.type === 'RequestHeaderModifier' ? requestHeaders : responseHeaders).push(mod);
        return;
      }
      case 'RequestRedirect': {
        const r = f.requestRedirect;
        if (!r) return missing('requestRedirect');
        if (redirectAt >= 0 || rewriteAt >= 0) {
          fatal.push({ field, reason: 'IncompatibleFilters', message: 'a rule may have one RequestRedirect and no URLRewrite beside it' });
          return;
        }
        redirectAt = i;
        const path = r.path ? compilePathModifier(r.path, `${field}.requestRedirect.path`, 'RequestRedirect', ctx, fatal) : undefined;
        set.redirect = { scheme: r.scheme, hostname: r.hostname, path, port: r.port, statusCode: r.statusCode ?? 302 };
        return;
      }
      case 'URLRewrite': {
        const r = f.urlRewrite;
        if (!r) return missing('urlRewrite');
        if (redirectAt >= 0 || rewriteAt >= 0) {
          fatal.push({ field, reason: 'IncompatibleFilters', message: 'a rule may have one URLRewrite and no RequestRedirect beside it' });
          return;
        }
        rewriteAt = i;
        const path = r.path ? compilePathModifier(r.path, `${field}.urlRewrite.path`, 'URLRewrite', ctx, fatal) : undefined;
        set.rewrite = { hostname: r.hostname, path };
        return;
      }
      case 'RequestMirror': {
        const m = f.requestMirror;
        if (!m) return missing('requestMirror');
        let fraction = 1;
        if (m.percent !== undefined && m.fraction !== undefined) {
          fatal.push({ field: `${field}.requestMirror`, reason: 'UnsupportedValue', message: 'only one of percent and fraction may be set' });
          return;
        }
        if (m.percent !== undefined) fraction = m.percent / 100;
        if (m.fraction !== undefined) {
          const d = m.fraction.denominator ?? 100;
          if (d <= 0 || m.fraction.numerator < 0 || m.fraction.numerator > d) {
            fatal.push({ field: `${field}.requestMirror.fraction`, reason: 'UnsupportedValue', message: 'numerator must be between 0 and a denominator above 0' });
            return;
          }
          fraction = m.fraction.numerator / d;
        }
        const { target, invalid } = resolveBackendRef(m.backendRef, ctx.routeNamespace, ctx.services);
        // An unresolvable mirror is not configured (the spec says so); the route's status tells.
        if (invalid) refs.push({ field: `${field}.requestMirror.backendRef`, reason: invalid.reason, message: invalid.message });
        else mirrors.push({ backend: target, fraction });
        return;
      }
      case 'ExtensionRef': {
        const e = f.extensionRef;
        if (!e) return missing('extensionRef');
        if (!knownExtensions.some((k) => k.group === e.group && k.kind === e.kind)) {
          const known = knownExtensions.map((k) => `${k.group}/${k.kind}`).join(', ');
          refs.push({ field: `${field}.extensionRef`, reason: 'InvalidKind', message: `${e.group}/${e.kind} is not an extension the waypoint knows (known: ${known}); matching requests get 500` });
        }
        extensions.push({ group: e.group, kind: e.kind, name: e.name });
        return;
      }
      default:
        fatal.push({ field: `${field}.type`, reason: 'UnsupportedValue', message: `${JSON.stringify(f.type)} is not a filter the waypoint supports` });
    }
  });
  return { set, fatal, refs };
}

function compileHeaderModifier(spec: HeaderModifierSpec, field: string, fatal: FilterProblem[]): HeaderModifier {
  const set = (spec.set ?? []).map((h) => [h.name.toLowerCase(), h.value] as const);
  const add = (spec.add ?? []).map((h) => [h.name.toLowerCase(), h.value] as const);
  const remove = (spec.remove ?? []).map((n) => n.toLowerCase());
  // The spec: "Filters specifying multiple actions of the same or different type for any one header
  // name are invalid." Otherwise the outcome would depend on the order we happen to apply them in.
  const seen = new Set<string>();
  for (const name of [...set.map((h) => h[0]), ...add.map((h) => h[0]), ...remove]) {
    if (seen.has(name)) fatal.push({ field, reason: 'UnsupportedValue', message: `header ${name} is named by more than one action` });
    seen.add(name);
  }
  return { set, add, remove };
}

function compilePathModifier(spec: PathModifierSpec, field: string, filter: string, ctx: FilterContext, fatal: FilterProblem[]): PathModifier | undefined {
  if (spec.type === 'ReplaceFullPath') {
    if (spec.replaceFullPath === undefined) {
      fatal.push({ field: `${field}.replaceFullPath`, reason: 'UnsupportedValue', message: 'is required when type is ReplaceFullPath' });
      return undefined;
    }
    return { type: 'ReplaceFullPath', value: spec.replaceFullPath, prefix: '' };
  }
  if (spec.type === 'ReplacePrefixMatch') {
    if (spec.replacePrefixMatch === undefined) {
      fatal.push({ field: `${field}.replacePrefixMatch`, reason: 'UnsupportedValue', message: 'is required when type is ReplacePrefixMatch' });
      return undefined;
    }
    if (ctx.onlyPrefix === undefined) {
      fatal.push({ field, reason: 'UnsupportedValue', message: `When using ${filter} filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified` });
      return undefined;
    }
    return { type: 'ReplacePrefixMatch', value: spec.replacePrefixMatch, prefix: ctx.onlyPrefix };
  }
  fatal.push({ field: `${field}.type`, reason: 'UnsupportedValue', message: `${JSON.stringify(spec.type)} must be ReplaceFullPath or ReplacePrefixMatch` });
  return undefined;
}

/** The rule's filters, then a backend's: what a request forwarded to that backend goes through. */
export function mergeFilters(rule: FilterSet, backend: FilterSet): FilterSet {
  if (backend === noFilters) return rule;
  if (rule === noFilters) return backend;
  return {
    requestHeaders: [...rule.requestHeaders, ...backend.requestHeaders],
    responseHeaders: [...rule.responseHeaders, ...backend.responseHeaders],
    redirect: backend.redirect ?? rule.redirect,
    rewrite:
      backend.rewrite || rule.rewrite
        ? { hostname: backend.rewrite?.hostname ?? rule.rewrite?.hostname, path: backend.rewrite?.path ?? rule.rewrite?.path }
        : undefined,
    mirrors: [...rule.mirrors, ...backend.mirrors],
    extensions: [...rule.extensions, ...backend.extensions],
  };
}
