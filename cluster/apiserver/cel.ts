// CEL as a CRD's x-kubernetes-validations rules use it: @bufbuild/cel (the CEL spec's standard
// functions and macros, RE2 regular expressions as in Go) with the strings extension and the part of
// Kubernetes' own library the vendored CRDs need (url(), isURL()), and custom resource values bound as
// Kubernetes binds them (integers as int, property names escaped). A rule that does not parse is an
// error in its CRD; one that calls what this library lacks is reported as skipped, never guessed at.

import { celEnv, celFunc, celMap, celMethod, CelScalar, type CelInput, isCelError, mapType, parse, plan } from '@bufbuild/cel';
import { strings } from '@bufbuild/cel/ext';
import type { JsonSchemaProps } from './crd-schema.js';

const { STRING, BOOL, DYN } = CelScalar;
const urlType = mapType(STRING, DYN);

/** Go's url.ParseRequestURI as Kubernetes' url() applies it: an absolute URL, or an absolute path. */
function parseRequestUri(text: string): URL | undefined {
  if (text.startsWith('/')) return /\s/.test(text) ? undefined : new URL(text, 'path:/');
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:/.test(text) || /\s/.test(text)) return undefined;
  try {
    return new URL(text);
  } catch {
    return undefined;
  }
}

function urlParts(text: string) {
  const u = parseRequestUri(text);
  if (!u) throw new Error(`URL parse error during conversion from string: ${JSON.stringify(text)}`);
  const relative = u.protocol === 'path:';
  return celMap(
    new Map<string, string>([
      ['scheme', relative ? '' : u.protocol.slice(0, -1)],
      ['host', relative ? '' : u.host],
      ['hostname', relative ? '' : u.hostname.replace(/^\[(.*)\]$/, '$1')],
      ['port', relative ? '' : u.port],
      ['path', u.pathname],
      ['query', u.search.slice(1)],
    ]),
  );
}

/** Kubernetes' URL library, with a URL carried as a map of its parts. */
const kubernetesUrl = [
  celFunc('url', [STRING], urlType, (s) => urlParts(s)),
  celFunc('isURL', [STRING], BOOL, (s) => parseRequestUri(s) !== undefined),
  ...(
    [
      ['getScheme', 'scheme'],
      ['getHost', 'host'],
      ['getHostname', 'hostname'],
      ['getPort', 'port'],
      ['getEscapedPath', 'path'],
      ['getQuery', 'query'],
    ] as const
  ).map(([name, part]) => celMethod(name, urlType, [], STRING, function () {
    return String(this.get(part) ?? '');
  })),
];

const env = celEnv({ funcs: [...strings, ...kubernetesUrl] });

/** The names CEL's parser makes of operators and macros, which the planner evaluates itself. */
const builtIn = /^(_|@|!_$|-_$)/;
const typeNames = new Set(['int', 'uint', 'double', 'bool', 'string', 'bytes', 'list', 'map', 'null_type', 'type', 'dyn']);

export interface ValidationRule {
  rule: string;
  message?: string;
  messageExpression?: string;
  reason?: string;
  fieldPath?: string;
  optionalOldSelf?: boolean;
}

export type CelBindings = { self: CelInput; oldSelf?: CelInput };

export interface CompiledRule {
  rule: ValidationRule;
  /** Whether it compares with the stored object (a transition rule), so runs only on update. */
  usesOldSelf: boolean;
  evaluate(bindings: CelBindings): { value: unknown } | { error: string };
  message?: (bindings: CelBindings) => string | undefined;
}

export type Compiled = { ok: CompiledRule } | { skipped: string } | { invalid: string };

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Node = any;

/** The functions and free identifiers `expr` uses. */
function uses(expr: Node, out: { functions: Set<string>; idents: Set<string>; bound: Set<string> }): void {
  if (!expr?.exprKind) return;
  const { case: kind, value } = expr.exprKind;
  switch (kind) {
    case 'identExpr':
      out.idents.add(value.name);
      break;
    case 'selectExpr':
      uses(value.operand, out);
      break;
    case 'callExpr':
      out.functions.add(value.function);
      uses(value.target, out);
      for (const a of value.args) uses(a, out);
      break;
    case 'listExpr':
      for (const e of value.elements) uses(e, out);
      break;
    case 'structExpr':
      for (const e of value.entries) {
        if (e.keyKind?.case === 'mapKey') uses(e.keyKind.value, out);
        uses(e.value, out);
      }
      break;
    case 'comprehensionExpr':
      for (const v of [value.iterVar, value.iterVar2, value.accuVar]) if (v) out.bound.add(v);
      for (const e of [value.iterRange, value.accuInit, value.loopCondition, value.loopStep, value.result]) uses(e, out);
      break;
  }
}

function compileExpression(text: string, variables: string[]): { run: (b: CelBindings) => unknown; usesOldSelf: boolean } | { skipped: string } | { invalid: string } {
  let parsed;
  try {
    parsed = parse(text);
  } catch (err) {
    return { invalid: `compilation failed: ${(err as Error).message}` };
  }
  const found = { functions: new Set<string>(), idents: new Set<string>(), bound: new Set<string>() };
  uses(parsed.expr, found);
  const unknownFunctions = [...found.functions].filter((f) => !builtIn.test(f) && !env.funcs.find(f));
  if (unknownFunctions.length) return { skipped: `calls ${unknownFunctions.join(', ')}, which the local API server's CEL library does not have` };
  const unknown = [...found.idents].filter((i) => !variables.includes(i) && !found.bound.has(i) && !typeNames.has(i));
  if (unknown.length) return { invalid: `compilation failed: undeclared reference to ${unknown.map((u) => JSON.stringify(u)).join(', ')}` };
  let program;
  try {
    program = plan(env, parsed);
  } catch (err) {
    return { invalid: `compilation failed: ${(err as Error).message}` };
  }
  return { run: (b) => program(b as never), usesOldSelf: found.idents.has('oldSelf') };
}

// A CRD's versions repeat their rules, and a CRD is compiled when written and again when first served:
// each rule text is compiled once per process (bounded, for the CRDs users write).
const compiledRules = new Map<string, Compiled>();
const maxCompiledRules = 4096;

/** Compiles one rule of a schema node; `invalid` is what Kubernetes would refuse the CRD for. */
export function compileRule(rule: ValidationRule): Compiled {
  const key = JSON.stringify([rule.rule, rule.message, rule.messageExpression, rule.reason, rule.fieldPath, rule.optionalOldSelf]);
  let hit = compiledRules.get(key);
  if (!hit) {
    if (compiledRules.size >= maxCompiledRules) compiledRules.clear();
    hit = compileUncached(rule);
    compiledRules.set(key, hit);
  }
  return hit;
}

function compileUncached(rule: ValidationRule): Compiled {
  if (rule.optionalOldSelf === true) return { skipped: 'optionalOldSelf is not supported by the local API server' };
  const main = compileExpression(rule.rule, ['self', 'oldSelf']);
  if (!('run' in main)) return main;
  let message: CompiledRule['message'];
  if (typeof rule.messageExpression === 'string') {
    const m = compileExpression(rule.messageExpression, ['self', 'oldSelf']);
    if ('invalid' in m) return { invalid: `messageExpression ${m.invalid}` };
    // A messageExpression it cannot evaluate falls back to the message, as when one fails in Kubernetes.
    if ('run' in m) {
      message = (b) => {
        const v = m.run(b);
        return typeof v === 'string' && v.trim() ? v : undefined;
      };
    }
  }
  return {
    ok: {
      rule,
      usesOldSelf: main.usesOldSelf,
      evaluate: (b) => {
        let v: unknown;
        try {
          v = main.run(b);
        } catch (err) {
          return { error: (err as Error).message };
        }
        return isCelError(v) ? { error: v.message } : { value: v };
      },
      ...(message ? { message } : {}),
    },
  };
}

// CEL's reserved words, which Kubernetes escapes as __word__ when a property is named so.
const reserved = new Set(['true', 'false', 'null', 'in', 'as', 'break', 'const', 'continue', 'else', 'for', 'function', 'if', 'import', 'let', 'loop', 'package', 'namespace', 'return', 'var', 'void', 'while']);

/** A property name as CEL rules spell it (k8s.io/apiserver/pkg/cel.Escape). */
export function escapeProperty(name: string): string {
  if (reserved.has(name)) return `__${name}__`;
  return name.replace(/__/g, '__underscores__').replace(/\./g, '__dot__').replace(/-/g, '__dash__').replace(/\//g, '__slash__');
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A custom resource's value as CEL sees it under `schema`: integers (and int-or-string numbers) as
 * int, other numbers as double, an object's declared properties by their escaped names, a map's keys
 * as they are, and what no schema describes (preserved unknown fields) by its JSON type.
 */
export function toCel(schema: JsonSchemaProps | undefined, value: unknown): CelInput {
  if (value === null || value === undefined) return null;
  if (typeof value === 'number') {
    const integral = schema?.type === 'integer' || schema?.['x-kubernetes-int-or-string'] === true || (schema?.type === undefined && Number.isInteger(value));
    return integral && Number.isInteger(value) ? BigInt(value) : value;
  }
  if (typeof value === 'string' || typeof value === 'boolean') return value;
  const items = isObject(schema?.items) ? schema.items : undefined;
  if (Array.isArray(value)) return value.map((v) => toCel(items, v));
  if (!isObject(value)) return null;
  const properties = isObject(schema?.properties) ? (schema.properties as Record<string, JsonSchemaProps>) : undefined;
  const additional = isObject(schema?.additionalProperties) ? schema.additionalProperties : undefined;
  const out = new Map<string, CelInput>();
  for (const [k, v] of Object.entries(value)) {
    if (properties?.[k]) out.set(escapeProperty(k), toCel(properties[k], v));
    else if (additional) out.set(k, toCel(additional, v));
    else out.set(properties ? escapeProperty(k) : k, toCel(undefined, v));
  }
  return out;
}
