// A CustomResourceDefinition as the API server checks it before storing it (apiextensions.k8s.io/v1
// validation: names, group, scope, versions with one storage version, subresources, printer columns,
// a structural schema), the defaults it fills in, and the status it reports (NamesAccepted,
// Established, acceptedNames). Serving what it defines is custom-resources.ts's.

import type { Condition, Crd, CrdSpec } from '../../shared/kube/crds.js';
import { structuralProblems } from './crd-schema.js';
import type { StatusCause } from './errors.js';
import { parseJsonPath } from './json-path.js';

export type { Condition, Crd, CrdNames, CrdSpec, CrdVersion, PrinterColumn } from '../../shared/kube/crds.js';

const dnsLabel = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const dnsSubdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const kindName = /^[A-Za-z][A-Za-z0-9]*$/;
const columnTypes = ['integer', 'number', 'string', 'boolean', 'date'];
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Fills what Kubernetes defaults: singular and listKind from kind, served and storage as given, conversion None. Changes `crd` in place. */
export function defaultCrd(crd: Crd): void {
  const spec = crd.spec as Partial<CrdSpec> | undefined;
  if (!isObject(spec)) return;
  if (isObject(spec.names) && typeof spec.names.kind === 'string') {
    spec.names.singular ||= spec.names.kind.toLowerCase();
    spec.names.listKind ||= `${spec.names.kind}List`;
  }
  spec.conversion ??= { strategy: 'None' };
  if (Array.isArray(spec.versions)) for (const v of spec.versions) if (isObject(v) && typeof v.served !== 'boolean' && v.served !== undefined) v.served = Boolean(v.served);
}

/**
 * What is wrong with `crd` (after defaultCrd), each naming its field; `old` is the stored one for an
 * update; `builtInGroups` are the groups the server has built in, which a CRD may not take;
 * `kindTaken` says which other resource serves a kind already (ambit stores objects by kind).
 */
export function crdProblems(crd: Crd, old: Crd | undefined, builtInGroups: Set<string>, kindTaken: (kind: string) => string | undefined): StatusCause[] {
  const out: StatusCause[] = [];
  const add = (field: string, message: string, reason = 'FieldValueInvalid') => out.push({ reason, field, message });
  const required = (field: string) => add(field, 'Required value', 'FieldValueRequired');
  const spec = crd.spec as Partial<CrdSpec> | undefined;
  if (!isObject(spec)) {
    required('spec');
    return out;
  }
  const group = spec.group;
  if (typeof group !== 'string' || !group) required('spec.group');
  else if (!dnsSubdomain.test(group)) add('spec.group', `Invalid value: ${JSON.stringify(group)}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'`);
  else if (!group.includes('.')) add('spec.group', `Invalid value: ${JSON.stringify(group)}: should be a domain with at least one dot`);
  else if (builtInGroups.has(group)) add('spec.group', `Invalid value: ${JSON.stringify(group)}: is a group the API server has built in`);

  const names = spec.names;
  if (!isObject(names)) required('spec.names');
  else {
    const label = (field: string, v: unknown, need: boolean) => {
      if (v === undefined || v === '') return need ? required(field) : undefined;
      if (typeof v !== 'string' || !dnsLabel.test(v)) add(field, `Invalid value: ${JSON.stringify(v)}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character`);
    };
    label('spec.names.plural', names.plural, true);
    label('spec.names.singular', names.singular, true);
    if (typeof names.kind !== 'string' || !names.kind) required('spec.names.kind');
    else if (!kindName.test(names.kind)) add('spec.names.kind', `Invalid value: ${JSON.stringify(names.kind)}: must be a valid kind: letters and digits, starting with a letter`);
    if (typeof names.listKind === 'string' && !kindName.test(names.listKind)) add('spec.names.listKind', `Invalid value: ${JSON.stringify(names.listKind)}: must be a valid kind`);
    if (names.listKind === names.kind) add('spec.names.listKind', 'Invalid value: kind and listKind may not be the same');
    for (const [key, list] of [['shortNames', names.shortNames], ['categories', names.categories]] as const) {
      if (list === undefined) continue;
      if (!Array.isArray(list)) add(`spec.names.${key}`, 'Invalid value: must be a list of strings');
      else list.forEach((v, i) => label(`spec.names.${key}[${i}]`, v, true));
    }
    if (typeof names.plural === 'string' && typeof group === 'string' && crd.metadata.name !== `${names.plural}.${group}`) {
      add('metadata.name', `Invalid value: ${JSON.stringify(crd.metadata.name)}: must be spec.names.plural+"."+spec.group`);
    }
    if (typeof names.kind === 'string') {
      const other = kindTaken(names.kind);
      if (other) add('spec.names.kind', `Invalid value: ${JSON.stringify(names.kind)}: ${other} already serves this kind; the local API server keys objects by kind, so a kind is served by one group at a time`);
    }
  }

  if (spec.scope !== 'Namespaced' && spec.scope !== 'Cluster') {
    if (spec.scope === undefined) required('spec.scope');
    else add('spec.scope', `Unsupported value: ${JSON.stringify(spec.scope)}: supported values: "Cluster", "Namespaced"`, 'FieldValueNotSupported');
  }
  if (spec.preserveUnknownFields === true) add('spec.preserveUnknownFields', 'Invalid value: true: must be false in order to use defaulting', 'FieldValueInvalid');
  const strategy = spec.conversion?.strategy;
  if (strategy !== undefined && strategy !== 'None') {
    add('spec.conversion.strategy', `Unsupported value: ${JSON.stringify(strategy)}: the local API server converts between versions only with "None" (the same fields under another apiVersion); conversion webhooks are not called`, 'FieldValueNotSupported');
  }

  const versions = spec.versions;
  if (!Array.isArray(versions) || versions.length === 0) required('spec.versions');
  else {
    const seen = new Set<string>();
    let storage = 0;
    versions.forEach((v, i) => {
      const at = `spec.versions[${i}]`;
      if (!isObject(v)) return add(at, 'Invalid value: must be an object');
      if (typeof v.name !== 'string' || !v.name) required(`${at}.name`);
      else if (!dnsLabel.test(v.name)) add(`${at}.name`, `Invalid value: ${JSON.stringify(v.name)}: must be a DNS label`);
      else if (seen.has(v.name)) add(`${at}.name`, `Duplicate value: ${JSON.stringify(v.name)}`, 'FieldValueDuplicate');
      else seen.add(v.name);
      if (typeof v.served !== 'boolean') required(`${at}.served`);
      if (typeof v.storage !== 'boolean') required(`${at}.storage`);
      if (v.storage === true) storage++;
      out.push(...structuralProblems(v.schema?.openAPIV3Schema, `${at}.schema.openAPIV3Schema`));
      if (v.subresources !== undefined) {
        if (!isObject(v.subresources)) add(`${at}.subresources`, 'Invalid value: must be an object');
        else {
          if (v.subresources.scale !== undefined) add(`${at}.subresources.scale`, 'Forbidden: the scale subresource of custom resources is not served by the local API server', 'FieldValueForbidden');
          const other = Object.keys(v.subresources).filter((k) => k !== 'status' && k !== 'scale');
          if (other.length) add(`${at}.subresources`, `Forbidden: unknown subresources ${other.join(', ')}`, 'FieldValueForbidden');
        }
      }
      (v.additionalPrinterColumns ?? []).forEach((c, j) => {
        const cat = `${at}.additionalPrinterColumns[${j}]`;
        if (!isObject(c)) return add(cat, 'Invalid value: must be an object');
        if (typeof c.name !== 'string' || !c.name) required(`${cat}.name`);
        if (!columnTypes.includes(String(c.type))) add(`${cat}.type`, `Unsupported value: ${JSON.stringify(c.type)}: supported values: ${columnTypes.map((t) => JSON.stringify(t)).join(', ')}`, 'FieldValueNotSupported');
        if (typeof c.jsonPath !== 'string' || !c.jsonPath) required(`${cat}.jsonPath`);
        else if (!c.jsonPath.startsWith('.')) add(`${cat}.jsonPath`, `Invalid value: ${JSON.stringify(c.jsonPath)}: must be a simple json path starting with .`);
        else {
          try {
            parseJsonPath(c.jsonPath);
          } catch (err) {
            add(`${cat}.jsonPath`, `Invalid value: ${JSON.stringify(c.jsonPath)}: ${(err as Error).message}`);
          }
        }
      });
    });
    if (storage !== 1) add('spec.versions', `Invalid value: must have exactly one version marked as storage version (${storage} are)`);
  }

  if (old && isObject(spec)) {
    if (spec.scope !== old.spec.scope) add('spec.scope', 'Invalid value: field is immutable');
    if (isObject(names) && names.kind !== old.spec.names.kind) add('spec.names.kind', 'Invalid value: field is immutable in the local API server (objects are stored by kind)');
  }
  return out;
}

/** The status a valid CRD gets: NamesAccepted unless another CRD of its group took a name, Established when accepted. */
export function crdStatus(crd: Crd, others: Crd[], old: Crd | undefined, now: string): NonNullable<Crd['status']> {
  const n = crd.spec.names;
  const mine = [n.plural, n.singular, ...(n.shortNames ?? [])];
  let conflict: string | undefined;
  for (const o of others) {
    if (o.metadata.name === crd.metadata.name || o.spec.group !== crd.spec.group) continue;
    const theirs = o.status?.acceptedNames ?? o.spec.names;
    const taken = [theirs.plural, theirs.singular, ...(theirs.shortNames ?? [])];
    const clash = mine.find((x) => taken.includes(x));
    if (clash) conflict = `"${clash}" is already in use by ${o.metadata.name}`;
    else if (theirs.kind === n.kind || theirs.listKind === n.listKind) conflict = `kind or listKind is already in use by ${o.metadata.name}`;
    if (conflict) break;
  }
  const previous = new Map((old?.status?.conditions ?? []).map((c) => [c.type, c]));
  const condition = (type: string, ok: boolean, reason: string, message: string): Condition => {
    const status = ok ? 'True' : 'False';
    const before = previous.get(type);
    return { type, status, lastTransitionTime: before?.status === status ? before.lastTransitionTime : now, reason, message };
  };
  const accepted = conflict === undefined;
  const storage = crd.spec.versions.find((v) => v.storage)!.name;
  return {
    conditions: [
      condition('NamesAccepted', accepted, accepted ? 'NoConflicts' : 'NameConflict', accepted ? 'no conflicts found' : conflict!),
      condition('Established', accepted, accepted ? 'InitialNamesAccepted' : 'NotAccepted', accepted ? 'the initial names have been accepted' : 'not all names are accepted'),
    ],
    acceptedNames: accepted ? { ...n } : (old?.status?.acceptedNames ?? { plural: '', singular: '', kind: '', listKind: '' }),
    storedVersions: [...new Set([...(old?.status?.storedVersions ?? []), storage])],
  };
}

export function isEstablished(crd: Crd): boolean {
  return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ?? false;
}
