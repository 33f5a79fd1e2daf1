/**
 * The recipe's Kubernetes manifests (examples/containers/k8s) against the Kubernetes API schema,
 * from the kubernetes-models package (generated from Kubernetes' OpenAPI definitions): its
 * validators check types, formats and required fields, and its TypeScript interfaces, type-checked
 * with each manifest as an object literal, reject every field the API does not have (as
 * `kubectl --validate=strict` would; there is no API server here). Then what the recipe relies
 * on: a read-only root, the pinned digest, a startup probe that runs the example's probe.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Deployment } from 'kubernetes-models/apps/v1';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { repo } from './helpers/env.js';

const dir = join(repo, 'examples/containers/k8s');
type Manifest = Record<string, unknown> & { apiVersion: string; kind: string; metadata: { name: string } };

function load(file: string): Manifest[] {
  const docs = parseAllDocuments(readFileSync(join(dir, file), 'utf8'));
  for (const d of docs) expect(d.errors, file).toEqual([]);
  return docs.map((d) => d.toJS() as Manifest);
}

/** Type-checks each manifest as a literal of its kubernetes-models interface; the diagnostics. */
function strictCheck(manifests: Manifest[]): string[] {
  const file = join(repo, 'test', '__manifests__.ts');
  const types: Record<string, [string, string]> = { 'apps/v1/Deployment': ['IDeployment', 'kubernetes-models/apps/v1/Deployment'] };
  const lines: string[] = [];
  manifests.forEach((m, i) => {
    const t = types[`${m.apiVersion}/${m.kind}`];
    if (!t) throw new Error(`no schema for ${m.apiVersion} ${m.kind}`);
    lines.push(`import type { ${t[0]} as T${i} } from '${t[1]}';`, `export const m${i}: T${i} = ${JSON.stringify(m, null, 2)};`);
  });
  const text = lines.join('\n');
  const host = ts.createCompilerHost({});
  const readFile = host.readFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  host.readFile = (f) => (f === file ? text : readFile(f));
  host.fileExists = (f) => f === file || fileExists(f);
  const program = ts.createProgram(
    [file],
    { strict: true, noEmit: true, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, skipLibCheck: true, types: [] },
    host,
  );
  return ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
}

function validate(m: Manifest): void {
  if (`${m.apiVersion}/${m.kind}` !== 'apps/v1/Deployment') throw new Error(`no schema for ${m.apiVersion} ${m.kind}`);
  new Deployment(m as never).validate();
}

interface Container {
  env: Array<{ name: string; value: string }>;
  securityContext: { readOnlyRootFilesystem: boolean };
  startupProbe: { exec: { command: string[] } };
  volumeMounts: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
}
const containers = (m: Manifest) => (m as unknown as { spec: { template: { spec: { containers: Container[]; volumes: Array<Record<string, unknown>> } } } }).spec.template.spec;
const env = (c: Container) => Object.fromEntries(c.env.map((e) => [e.name, e.value]));

const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
const all = files.flatMap((f) => load(f).map((m) => ({ file: f, m })));

describe('the recipe\'s Kubernetes manifests', () => {
  it('are the two files the recipe shows: the blob in the image, and on a shared volume', () => {
    expect(files.sort()).toEqual(['deployment.yaml', 'shared-blob.yaml']);
    expect(all.map((x) => `${x.file}: ${x.m.kind} ${x.m.metadata.name}`)).toEqual([
      'deployment.yaml: Deployment codeblob-app',
      'shared-blob.yaml: Deployment codeblob-api',
      'shared-blob.yaml: Deployment codeblob-jobs',
    ]);
  });

  it('validate against the API schema (types, formats, required fields)', () => {
    for (const { m } of all) expect(() => validate(m)).not.toThrow();
  });

  it('have no field the API does not define (strict)', () => {
    expect(strictCheck(all.map((x) => x.m))).toEqual([]);
  }, 120_000);

  it('the checks catch a wrong type and a misspelled field', () => {
    const broken = structuredClone(all[0]!.m) as Manifest & { spec: { replicas: unknown } };
    broken.spec.replicas = 'four';
    expect(() => validate(broken)).toThrow(/replicas/);
    const typo = structuredClone(all[0]!.m);
    (containers(typo).containers[0]!.startupProbe as unknown as Record<string, unknown>).periodSecondz = 2;
    expect(strictCheck([typo]).join('\n')).toMatch(/periodSecondz/);
  }, 120_000);

  it('run read-only, pin the blob\'s SHA-256, and probe with the example\'s probe', () => {
    for (const { file, m } of all) {
      const spec = containers(m);
      for (const c of spec.containers) {
        const e = env(c);
        expect(c.securityContext.readOnlyRootFilesystem, file).toBe(true);
        expect(e.CODEBLOB_FILE, file).toBe('/blob/app.blob');
        expect(e.CODEBLOB_SHA256, file).toMatch(/^[0-9a-f]{64}$/);
        expect(c.startupProbe.exec.command, file).toEqual(['node', '/app/probe.cjs']);
        expect(existsSync(join(repo, 'examples/containers/probe.cjs'))).toBe(true);
        // /tmp is the one writable place: the pool's status file for the probe.
        expect(c.volumeMounts.find((v) => v.mountPath === '/tmp'), file).toBeDefined();
      }
    }
  });

  it('the shared variant mounts one blob read-only from an image volume and checks files by stat', () => {
    for (const { m } of all.filter((x) => x.file === 'shared-blob.yaml')) {
      const spec = containers(m);
      const c = spec.containers[0]!;
      expect(c.volumeMounts.find((v) => v.mountPath === '/blob')).toMatchObject({ name: 'blob', readOnly: true });
      expect(spec.volumes.find((v) => v.name === 'blob')).toMatchObject({ image: { reference: 'registry.example.com/codeblob-app-blob:1.0.0' } });
      expect(env(c).CODEBLOB_VERIFY).toBe('stat');
    }
  });
});
