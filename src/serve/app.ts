import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifySchema } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import { MosError, exitCodeOf, isMosError, type ErrorCode, type Logger } from '../base/index.js';
import {
  appendAudit, bootStatus, cachedStatusModel, errorOf, history, readAudit, setPin, status, voteBoot,
  type EngineEvent, type Operation, type OperationEngine, type OperationMode, type OperationRequest, type Plan,
} from '../machine/index.js';
import type { ClientIdentity } from '../trust/index.js';
import { allows, roleOf, updateAuthorizer, type Role } from './roles.js';
import { coalesce } from './coalesce.js';
// The contract: routes take their request and response schemas from this document, and serve it.
import openapi from './openapi.json' with { type: 'json' };

/** The verified client of a connection (set by the TLS layer once the chain passed the strict check). */
export type IdentityOf = (socket: TLSSocket) => ClientIdentity | undefined;

export interface AppLimits {
  /** Largest request body (413 beyond). */
  readonly bodyBytes: number;
  /** Requests per client certificate per window (429 with Retry-After beyond). */
  readonly rateMax: number;
  readonly rateWindowMs: number;
}

export interface AppOptions {
  readonly root: string;
  readonly engine: OperationEngine;
  readonly identityOf: IdentityOf;
  readonly limits: AppLimits;
  readonly serverFactory: (handler: (req: IncomingMessage, res: ServerResponse) => void) => Server;
  readonly log: Logger;
}

interface Caller {
  readonly id: ClientIdentity;
  readonly role: Role;
}

declare module 'fastify' {
  interface FastifyRequest {
    caller?: Caller;
    /** What the audit log records for this request (set by mutating handlers). */
    audit?: { action: string; operation?: string };
  }
  interface FastifyContextConfig {
    role?: Role;
  }
}

type Doc = { paths: Record<string, Record<string, OpenApiOperation>>; components: { schemas: Record<string, unknown> } };
interface OpenApiOperation {
  readonly 'x-mosctl-role': Role;
  readonly requestBody?: { content: Record<string, { schema: unknown }> };
  readonly parameters?: readonly { name: string; in: 'path' | 'query'; required?: boolean; schema: unknown }[];
  readonly responses: Record<string, { $ref?: string; content?: Record<string, { schema: unknown }> }>;
}
const doc = openapi as unknown as Doc;

/** Inlines `#/components/schemas/X` references (Fastify's validator gets self-contained schemas). */
function deref(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(deref);
  if (v && typeof v === 'object') {
    const ref = (v as { $ref?: unknown }).$ref;
    if (typeof ref === 'string' && ref.startsWith('#/components/schemas/')) return deref(doc.components.schemas[ref.slice(21)]);
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, deref(x)]));
  }
  return v;
}

/** The Fastify route schema of one OpenAPI operation: body, path and query parameters, JSON responses. */
function routeSchema(path: string, method: string): { schema: FastifySchema; role: Role } {
  const o = doc.paths[path]?.[method];
  if (!o) throw new Error(`openapi.json has no ${method} ${path}`);
  const params = (o.parameters ?? []).filter((p) => p.in === 'path');
  const query = (o.parameters ?? []).filter((p) => p.in === 'query');
  const object = (ps: typeof params) => ({
    type: 'object',
    additionalProperties: false,
    properties: Object.fromEntries(ps.map((p) => [p.name, deref(p.schema)])),
    required: ps.filter((p) => p.required).map((p) => p.name),
  });
  const response: Record<string, unknown> = {};
  for (const [code, r] of Object.entries(o.responses)) {
    const json = r.$ref ? doc.components.schemas['Error'] : r.content?.['application/json']?.schema;
    if (json) response[code] = deref(json);
  }
  const body = o.requestBody?.content['application/json']?.schema;
  return {
    schema: { ...(body ? { body: deref(body) } : {}), ...(params.length ? { params: object(params) } : {}), ...(query.length ? { querystring: object(query) } : {}), response },
    role: o['x-mosctl-role'],
  };
}

/** HTTP status of an error code: specific ones first, then by its exit-code class. */
export function httpStatusOf(code: ErrorCode): number {
  const specific: Partial<Record<ErrorCode, number>> = {
    API_REQUEST_INVALID: 400,
    USAGE: 400,
    API_UNAUTHORIZED: 401,
    API_FORBIDDEN: 403,
    API_OPERATION_UNKNOWN: 404,
    API_PLAN_UNKNOWN: 404,
    CONFIG_GENERATION_UNKNOWN: 404,
    SYSTEM_TARGET_UNKNOWN: 404,
    API_RATE_LIMITED: 429,
    CONFIG_NOT_INSTALLED: 503,
  };
  const byClass: Record<number, number> = { 3: 422, 4: 422, 5: 422, 6: 422, 7: 502, 8: 409, 9: 500, 70: 500 };
  return specific[code] ?? byClass[exitCodeOf(code)] ?? 500;
}

function sendError(reply: FastifyReply, status: number, e: MosError): FastifyReply {
  (reply as FastifyReply & { mosErrorCode?: string }).mosErrorCode = e.code;
  return reply.code(status).type('application/json').send({ error: errorOf(e) });
}

/**
 * The upgrade API as a Fastify application: every route's schemas come from openapi.json, every route
 * requires the role its `x-mosctl-role` names, errors have one shape, mutating requests are audited.
 */
export async function buildApp(opts: AppOptions): Promise<FastifyInstance> {
  const { engine, root, log } = opts;
  const app = Fastify({
    serverFactory: opts.serverFactory,
    bodyLimit: opts.limits.bodyBytes,
    logger: false,
    return503OnClosing: true,
    // Validate, never repair: no coercion, no defaults, no silent removal of unknown fields.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false, strict: false } },
  });

  // JSON only: a text/plain body is a 415, not a string that fails validation.
  app.removeContentTypeParser(['text/plain']);

  // Who is calling: the TLS layer verified the chain; no identity means no request.
  app.addHook('onRequest', async (req, reply) => {
    const id = opts.identityOf(req.raw.socket as TLSSocket);
    if (!id) return sendError(reply, 401, new MosError({ code: 'API_UNAUTHORIZED', message: 'no verified client certificate' }));
    const role = roleOf(id);
    if (!role) {
      return sendError(reply, 403, new MosError({ code: 'API_FORBIDDEN', subject: id.subject, message: 'the client certificate names no role', hint: 'issue it with O=mos:reader, O=mos:apps or O=mos:admin' }));
    }
    req.caller = { id, role };
    return undefined;
  });

  await app.register(rateLimit, {
    global: true,
    max: opts.limits.rateMax,
    timeWindow: opts.limits.rateWindowMs,
    keyGenerator: (req) => req.caller?.id.fingerprint ?? req.ip,
    errorResponseBuilder: (_req, ctx) => ({
      statusCode: 429,
      mosError: new MosError({ code: 'API_RATE_LIMITED', message: `more than ${ctx.max} requests in ${ctx.after}`, hint: `retry after ${Math.ceil(ctx.ttl / 1000)} s` }),
    }),
  });

  app.addHook('preHandler', async (req, reply) => {
    const needed = req.routeOptions.config.role;
    if (needed && req.caller && !allows(req.caller.role, needed)) {
      return sendError(reply, 403, new MosError({ code: 'API_FORBIDDEN', subject: `role ${req.caller.role}`, message: `${req.method} ${req.routeOptions.url} needs ${needed}` }));
    }
    return undefined;
  });

  app.addHook('onResponse', async (req, reply) => {
    const ms = Math.round(reply.elapsedTime);
    log.info('request', { method: req.method, path: req.routeOptions.url ?? req.url.split('?')[0], status: reply.statusCode, ms, client: req.caller?.id.subject });
    if (req.method !== 'POST' || !req.caller || reply.statusCode === 429) return;
    await appendAudit(root, {
      time: new Date().toISOString(),
      subject: req.caller.id.subject,
      fingerprint: req.caller.id.fingerprint,
      role: req.caller.role,
      action: req.audit?.action ?? `${req.method} ${req.url.split('?')[0]}`,
      status: reply.statusCode,
      ...(req.audit?.operation ? { operation: req.audit.operation } : {}),
      ...(reply.statusCode >= 400 ? { error: (reply as FastifyReply & { mosErrorCode?: string }).mosErrorCode ?? String(reply.statusCode) } : {}),
    }).catch((e: unknown) => log.warn('cannot append to the audit log', { error: e instanceof Error ? e.message : String(e) }));
  });

  app.setErrorHandler((err: unknown, _req, reply) => {
    const e = err as { statusCode?: number; code?: string; message?: string; validation?: unknown; mosError?: MosError };
    let status: number;
    let m: MosError;
    if (e.mosError instanceof MosError) {
      status = e.statusCode ?? 500;
      m = e.mosError;
    } else if (isMosError(err)) {
      status = httpStatusOf(err.code);
      m = err;
    } else if (e.validation) {
      status = 400;
      m = new MosError({ code: 'API_REQUEST_INVALID', subject: 'request', message: e.message ?? 'does not match the API schema' });
    } else if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      status = 413;
      m = new MosError({ code: 'API_REQUEST_INVALID', subject: 'request body', message: `is larger than ${opts.limits.bodyBytes} bytes` });
    } else if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      status = 415;
      m = new MosError({ code: 'API_REQUEST_INVALID', subject: 'request body', message: 'must be application/json' });
    } else if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
      status = e.statusCode;
      m = new MosError({ code: 'API_REQUEST_INVALID', subject: 'request', message: e.message ?? 'is invalid' });
    } else {
      log.warn('internal error', { error: e.message ?? String(err) });
      status = 500;
      m = new MosError({ code: 'INTERNAL', message: 'internal error (a bug, please report it)' });
    }
    void sendError(reply, status, m);
  });

  app.setNotFoundHandler((req, reply) => sendError(reply, 404, new MosError({ code: 'API_REQUEST_INVALID', subject: `${req.method} ${req.url.split('?')[0]}`, message: 'no such endpoint', hint: 'see GET /v1/openapi.json' })));

  const route = <B = unknown, P = unknown, Q = unknown>(
    method: 'GET' | 'POST',
    path: string,
    handler: (req: FastifyRequest<{ Body: B; Params: P; Querystring: Q }>, reply: FastifyReply, caller: Caller) => Promise<unknown>,
  ): void => {
    const { schema, role } = routeSchema(path, method.toLowerCase());
    app.route<{ Body: B; Params: P; Querystring: Q }>({
      method,
      url: path.replace(/\{(\w+)\}/g, ':$1'),
      schema,
      config: { role },
      handler: async (req, reply) => handler(req, reply, req.caller!),
    });
  };

  route('GET', '/v1/openapi.json', async () => openapi);
  route('GET', '/v1/whoami', async (_req, _reply, c) => ({ subject: c.id.subject, fingerprint: c.id.fingerprint, role: c.role }));
  // Many clients poll these: concurrent requests share reads (each still sees state from after it arrived).
  const readStatus = coalesce(cachedStatusModel(root));
  const readHistory = coalesce(async () => ({ generations: await history({ root }) }));
  route('GET', '/v1/status', async () => readStatus());
  route('GET', '/v1/generations', async () => readHistory());

  const planView = (p: Plan) => ({ ...p, requiredRole: p.rebootRequired ? 'mos:admin' : 'mos:apps' });
  route<{ source: string; allowDowngrade?: boolean }>('POST', '/v1/plans', async (req, _reply, c) => {
    req.audit = { action: `plan ${req.body.source}` };
    return planView(await engine.plan(req.body.source, { allowDowngrade: req.body.allowDowngrade ?? false, ...authorizeFor(c.role) }));
  });
  route<unknown, { id: string }>('GET', '/v1/plans/{id}', async (req) => planView(engine.getPlan(req.params.id)));

  const accepted = async (req: FastifyRequest, reply: FastifyReply, request: OperationRequest, c: Caller, key?: string): Promise<Operation> => {
    const { operation, created } = await engine.submit(request, {
      client: { subject: c.id.subject, fingerprint: c.id.fingerprint, role: c.role },
      ...(key !== undefined ? { idempotencyKey: key } : {}),
      ...authorizeFor(c.role),
    });
    req.audit = { ...(req.audit ?? { action: request.action }), operation: operation.id };
    reply.code(created ? 202 : 200).header('location', `/v1/operations/${operation.id}`);
    return operation;
  };

  interface OperationBody {
    planId?: string;
    source?: string;
    requireManifestDigest?: string;
    mode: OperationMode;
    allowDowngrade?: boolean;
    idempotencyKey?: string;
  }
  route<OperationBody>('POST', '/v1/operations', async (req, reply, c) => {
    const b = req.body;
    const header = req.headers['idempotency-key'];
    const key = b.idempotencyKey ?? (typeof header === 'string' && header.length > 0 && header.length <= 200 ? header : undefined);
    if ((b.planId === undefined) === (b.source === undefined)) {
      throw new MosError({ code: 'API_REQUEST_INVALID', subject: 'request body', message: 'give exactly one of planId and source' });
    }
    let request: OperationRequest;
    if (b.planId !== undefined) {
      const p = engine.getPlan(b.planId);
      if (p.rebootRequired && !allows(c.role, 'mos:admin')) {
        throw new MosError({ code: 'API_FORBIDDEN', subject: `role ${c.role}`, message: `plan ${p.id} changes the hostfs target: only mos:admin may apply it` });
      }
      if (b.requireManifestDigest !== undefined && b.requireManifestDigest.replace(/^sha256:/, '') !== p.manifest) {
        throw new MosError({ code: 'SYSTEM_MANIFEST_CHANGED', subject: `plan ${p.id}`, message: `is for install manifest ${p.manifest.slice(0, 12)}, not the required one` });
      }
      request = { action: 'update', source: p.source, mode: b.mode, allowDowngrade: b.allowDowngrade ?? p.allowDowngrade, requireManifestDigest: p.manifest };
    } else if (!allows(c.role, 'mos:admin')) {
      // A role that may not touch hostfs learns it now (403), not from a failed operation: plan first,
      // then bind the operation to the manifest the plan checked.
      const p = await engine.plan(b.source!, { allowDowngrade: b.allowDowngrade ?? false, ...authorizeFor(c.role) });
      if (b.requireManifestDigest !== undefined && b.requireManifestDigest.replace(/^sha256:/, '') !== p.manifest) {
        throw new MosError({ code: 'SYSTEM_MANIFEST_CHANGED', subject: b.source!, message: `names install manifest ${p.manifest.slice(0, 12)}, not the required one` });
      }
      request = { action: 'update', source: b.source!, mode: b.mode, allowDowngrade: b.allowDowngrade ?? false, requireManifestDigest: p.manifest };
    } else {
      request = {
        action: 'update',
        source: b.source!,
        mode: b.mode,
        allowDowngrade: b.allowDowngrade ?? false,
        ...(b.requireManifestDigest ? { requireManifestDigest: b.requireManifestDigest.replace(/^sha256:/, '') } : {}),
      };
    }
    req.audit = { action: `update ${request.mode} ${request.source}` };
    return accepted(req, reply, request, c, key);
  });
  route('GET', '/v1/operations', async () => ({ operations: engine.list() }));
  route<unknown, { id: string }>('GET', '/v1/operations/{id}', async (req) => engine.get(req.params.id));
  route<unknown, { id: string }>('POST', '/v1/operations/{id}/cancel', async (req, reply, c) => {
    req.audit = { action: `cancel ${req.params.id}`, operation: req.params.id };
    // A role may cancel what it could have started: mos:apps not an operation only mos:admin may run.
    const target = engine.get(req.params.id);
    if (!allows(c.role, 'mos:admin') && (target.client === undefined || !allows(c.role, target.client.role as Role))) {
      throw new MosError({ code: 'API_FORBIDDEN', subject: `role ${c.role}`, message: `may not cancel operation ${target.id}, started by ${target.client?.role ?? 'the machine'}` });
    }
    const op = engine.cancel(req.params.id);
    reply.code(202);
    return op;
  });
  route<{ to?: number }>('POST', '/v1/rollback', async (req, reply, c) => {
    req.audit = { action: `rollback${req.body.to !== undefined ? ` to ${req.body.to}` : ''}` };
    return accepted(req, reply, { action: 'rollback', ...(req.body.to !== undefined ? { to: req.body.to } : {}) }, c);
  });
  for (const action of ['activate', 'deactivate'] as const) {
    route<unknown, { name: string }>('POST', `/v1/targets/{name}/${action}`, async (req, reply, c) => {
      req.audit = { action: `${action} ${req.params.name}` };
      await refuseHostfsTarget(root, req.params.name, c.role);
      return accepted(req, reply, { action, target: req.params.name }, c);
    });
  }
  route<{ dryRun?: boolean; keep?: number }>('POST', '/v1/gc', async (req, reply, c) => {
    req.audit = { action: `gc${req.body.dryRun ? ' dry-run' : ''}${req.body.keep !== undefined ? ` keep ${req.body.keep}` : ''}` };
    return accepted(req, reply, { action: 'gc', dryRun: req.body.dryRun ?? false, ...(req.body.keep !== undefined ? { keep: req.body.keep } : {}) }, c);
  });
  for (const verb of ['pin', 'unpin'] as const) {
    route<unknown, { number: string }>('POST', `/v1/generations/{number}/${verb}`, async (req) => {
      req.audit = { action: `${verb} ${req.params.number}` };
      return setPin({ root, ref: Number(req.params.number), pinned: verb === 'pin' });
    });
  }
  route('GET', '/v1/boot', async () => bootStatus(root, { events: 100 }));
  route<{ good: boolean; reason?: string }>('POST', '/v1/boot/vote', async (req, _reply, c) => {
    req.audit = { action: `vote ${req.body.good ? 'good' : 'bad'}` };
    return voteBoot(root, { good: req.body.good, by: c.id.subject, ...(req.body.reason !== undefined ? { reason: req.body.reason } : {}) });
  });
  route<unknown, unknown, { after?: string }>('GET', '/v1/audit', async (req) => ({ entries: await readAudit(root, { after: Number(req.query.after ?? 0), limit: 10_000 }) }));

  route<unknown, unknown, { after?: string }>('GET', '/v1/events', async (req, reply) => {
    const last = req.headers['last-event-id'];
    const after = Number(req.query.after ?? (typeof last === 'string' && /^[0-9]{1,15}$/.test(last) ? last : 0));
    if (!/text\/event-stream/.test(req.headers.accept ?? '')) {
      reply.type('application/x-ndjson');
      return (await engine.eventsAfter(after)).map((e) => JSON.stringify(e) + '\n').join('');
    }
    streamEvents(engine, after, reply);
    return reply;
  });

  return app;
}

function authorizeFor(role: Role): { authorize?: NonNullable<ReturnType<typeof updateAuthorizer>> } {
  const a = updateAuthorizer(role);
  return a ? { authorize: a } : {};
}

/** Only mos:admin may touch a hostfs target (activate refuses hostfs anyway; deactivate would be a no-op). */
async function refuseHostfsTarget(root: string, name: string, role: Role): Promise<void> {
  if (allows(role, 'mos:admin')) return;
  const s = await status({ root }).catch(() => undefined);
  if (s?.targets.some((t) => t.name === name && t.service_type === 'hostfs')) {
    throw new MosError({ code: 'API_FORBIDDEN', subject: `role ${role}`, message: `may not act on the hostfs target ${name}` });
  }
}

/**
 * Server-Sent Events: replays the journal after `after`, then follows it live. Subscribes before the
 * replay and drops duplicates by seq, so nothing between the two is lost. A comment every 15 s keeps
 * idle connections (and proxies) open.
 */
const MAX_STREAM_BUFFER = 1024 * 1024;

function streamEvents(engine: OperationEngine, after: number, reply: FastifyReply): void {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
  let last = after;
  const pending: EngineEvent[] = [];
  let replaying = true;
  const send = (e: EngineEvent): boolean => {
    if (e.seq <= last || res.destroyed) return true;
    last = e.seq;
    return res.write(`id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
  };
  // Live events: a client that does not read cannot make the server buffer without bound; it is dropped
  // and resumes from its last event id when it reconnects.
  const write = (e: EngineEvent): void => {
    send(e);
    if (res.writableLength > MAX_STREAM_BUFFER) res.destroy();
  };
  const unsubscribe = engine.subscribe((e) => (replaying ? pending.push(e) : write(e)));
  const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
  const stop = (): void => {
    clearInterval(ping);
    unsubscribe();
  };
  res.on('close', stop);
  // The replay reads the journal once and follows the client's pace (backpressure), so a client far
  // behind gets every event however many there are.
  const replay = async (): Promise<void> => {
    for (const e of await engine.eventsAfter(after, Infinity)) {
      if (res.destroyed) return;
      if (!send(e)) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            res.off('drain', done).off('close', done);
            resolve();
          };
          res.on('drain', done).on('close', done);
        });
      }
    }
  };
  replay()
    .then(() => {
      replaying = false;
      for (const e of pending.splice(0)) write(e);
    })
    .catch(() => {
      stop();
      res.destroy();
    });
}
