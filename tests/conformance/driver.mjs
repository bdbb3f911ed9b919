// Conformance driver: the official @trigger.dev/core ApiClient against a Sessions server.
//
// Usage:
//   node driver.mjs [--url URL] [--key SECRET_KEY] < program.json   one program, then exit
//   node driver.mjs --serve [--url URL] [--key SECRET_KEY]           one program per stdin line
//   node driver.mjs smoke [--url URL] [--key SECRET_KEY]             quick manual check
//
// URL / key default to $SESSIONS_URL / $SESSIONS_SECRET_KEY (then $TRIGGER_API_URL /
// $TRIGGER_SECRET_KEY); a program may override them with "url" / "key". A program is
// {"ops": [op, ...]}; each op runs in order and yields one result, printed together as one
// JSON line on stdout: {"results": [...]}. With --serve the process stays up (pytest keeps one
// for the whole run, which saves node's start-up time per test) and answers each input line
// with one output line.
//
// Every op may carry "token" (use that bearer token instead of the secret key) and "retry"
// (max attempts for zodfetch calls; default 1 so an error surfaces at once). A result is
// {"ok": true, "value": ...} or {"ok": false, "error": {"name", "status", "message"}}.
//
// Ops:
//   create    {body, deepMetadata?}          -> value {data, status}
//   retrieve  {session}                      -> value {data}
//   update    {session, body}                -> value {data}
//   close     {session, body?}               -> value {data}
//   list      {options, maxPages?}           -> value {pages: [{ids, next, previous}]}
//   listAll   {options}                      -> value {ids}   (for await over every page)
//   append    {session, io, body, repeat?}   -> value {data}   (body: a string, sent as is;
//                                                               repeated `repeat` times)
//   appendMany {session, io, bodies}         -> value {data: [...]}
//   records   {session, io, afterEventId?}   -> value {data}
//   subscribe {session, io, lastEventId?, from?, timeoutInSeconds?, stopAfter?, maxMs?,
//              during?: {delayMs, ops: [...]}}
//             -> value {chunks, parts, controls, completed, error, during}
//             Reads until `stopAfter` chunks arrived (then cancels), the stream completes,
//             or maxMs (default 8000) passes. `during` ops run concurrently, delayMs after
//             the subscription's response headers arrived.
//   publicToken {scopes?, expirationTime?}   -> value {token}  (@trigger.dev/sdk's
//                                                               auth.createPublicToken)
//   parallel  {ops}                          -> value {results}  (all at once; an entry that
//                                                               is a list runs in sequence)
//   sleep     {ms}                           -> value {}
import { createInterface } from "node:readline";
import { ApiClient } from "@trigger.dev/core/v3";
import { auth } from "@trigger.dev/sdk";

const argv = process.argv.slice(2);
function flag(name) {
  const i = argv.indexOf(name);
  if (i >= 0 && i + 1 < argv.length) {
    const value = argv[i + 1];
    argv.splice(i, 2);
    return value;
  }
  return undefined;
}

const serveMode = argv.includes("--serve");
if (serveMode) argv.splice(argv.indexOf("--serve"), 1);
const defaultUrl =
  flag("--url") ?? process.env.SESSIONS_URL ?? process.env.TRIGGER_API_URL ?? "http://127.0.0.1:8030";
const defaultKey =
  flag("--key") ?? process.env.SESSIONS_SECRET_KEY ?? process.env.TRIGGER_SECRET_KEY ?? "tr_dev_local";

// Short client-level backoff so an unexpected transient failure costs little time; the
// protocol (paths, headers, bodies, parsing) is the SDK's own.
const CLIENT_OPTIONS = { retry: { maxAttempts: 3, minTimeoutInMs: 100, maxTimeoutInMs: 500 } };

// Resolvers waiting for the next SSE response's headers (see `during` in runSubscribe): the
// SDK calls the global fetch at call time, so wrapping it observes the moment the server has
// answered a subscription (and so fixed its start position).
let sseWaiters = [];
const originalFetch = globalThis.fetch;
globalThis.fetch = async (input, init) => {
  const response = await originalFetch(input, init);
  const accept = new Headers(init?.headers).get("accept") ?? "";
  if (accept.includes("text/event-stream")) {
    const waiters = sseWaiters;
    sseWaiters = [];
    for (const resolve of waiters) resolve(response.status);
  }
  return response;
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let url = defaultUrl;
let secretKey = defaultKey;

function client(token) {
  return new ApiClient(url, token ?? secretKey, undefined, CLIENT_OPTIONS);
}

function reqOpts(op) {
  return { retry: { maxAttempts: op.retry ?? 1 } };
}

function describeError(err) {
  if (err === null || typeof err !== "object") return { name: "Error", message: String(err) };
  const out = {
    name: err.constructor?.name ?? err.name ?? "Error",
    status: typeof err.status === "number" ? err.status : null,
    message: String(err.message ?? err),
  };
  if (err.error !== undefined) out.error = err.error;
  if (err.rawBody !== undefined) out.rawBody = err.rawBody;
  return out;
}

async function runSubscribe(op) {
  const api = client(op.token);
  const abort = new AbortController();
  const parts = [];
  const controls = [];
  const chunks = [];
  let subscribeError = null;
  const maxMs = op.maxMs ?? 8000;
  const timer = setTimeout(() => abort.abort(), maxMs);
  let duringPromise = Promise.resolve(null);
  if (op.during) {
    // Run the ops once the subscription's response headers arrived, plus delayMs.
    const connected = new Promise((resolve) => sseWaiters.push(resolve));
    duringPromise = Promise.race([connected, sleep(maxMs)])
      .then(() => sleep(op.during.delayMs ?? 100))
      .then(() => runOps(op.during.ops));
  }
  let completed = false;
  let timedOut = false;
  try {
    const stream = await api.subscribeToSessionStream(op.session, op.io, {
      signal: abort.signal,
      lastEventId: op.lastEventId,
      from: op.from,
      timeoutInSeconds: op.timeoutInSeconds,
      onPart: (part) => {
        parts.push({
          id: part.id,
          recordId: part.recordId ?? null,
          chunk: part.chunk === undefined ? null : part.chunk,
          chunkIsUndefined: part.chunk === undefined,
          headers: part.headers ?? null,
          timestamp: part.timestamp ?? null,
        });
      },
      onControl: (control) => controls.push(control),
      onError: (err) => {
        subscribeError = describeError(err);
      },
    });
    const reader = stream.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        completed = !abort.signal.aborted;
        timedOut = abort.signal.aborted;
        break;
      }
      chunks.push(value === undefined ? null : value);
      if (op.stopAfter !== undefined && chunks.length >= op.stopAfter) {
        await reader.cancel().catch(() => {});
        break;
      }
    }
  } catch (err) {
    subscribeError = describeError(err);
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
  const during = await duringPromise;
  return { chunks, parts, controls, completed, timedOut, error: subscribeError, during };
}

async function runOp(op) {
  const api = client(op.token);
  switch (op.op) {
    case "create": {
      let body = op.body;
      if (op.deepMetadata !== undefined) {
        // metadata nested `deepMetadata` levels deep, built here (deeper than Python's json
        // module can write): {"k": {"k": ... "leaf"}}
        let value = "leaf";
        for (let i = 0; i < op.deepMetadata; i++) value = { k: value };
        body = { ...body, metadata: value };
      }
      const { data, response } = await api.createSession(body, reqOpts(op)).withResponse();
      if (op.deepMetadata !== undefined) {
        // Answer the depth instead of the value (Python's json module could not read it).
        let depth = 0;
        for (let v = data.metadata; v && typeof v === "object"; v = v.k) depth++;
        data.metadata = { depth };
      }
      return { data, status: response.status };
    }
    case "retrieve":
      return { data: await api.retrieveSession(op.session, reqOpts(op)) };
    case "update":
      return { data: await api.updateSession(op.session, op.body, reqOpts(op)) };
    case "close":
      return { data: await api.closeSession(op.session, op.body, reqOpts(op)) };
    case "list": {
      const pages = [];
      let page = await api.listSessions(op.options ?? {}, reqOpts(op));
      const maxPages = op.maxPages ?? 50;
      for (;;) {
        pages.push({
          ids: page.data.map((s) => s.id),
          items: page.data,
          next: page.pagination.next ?? null,
          previous: page.pagination.previous ?? null,
        });
        if (!page.hasNextPage() || pages.length >= maxPages) break;
        page = await page.getNextPage();
      }
      return { pages };
    }
    case "listAll": {
      const ids = [];
      for await (const s of api.listSessions(op.options ?? {}, reqOpts(op))) {
        ids.push(s.id);
        if (ids.length > 10000) break;
      }
      return { ids };
    }
    case "append": {
      const body = op.repeat === undefined ? op.body : op.body.repeat(op.repeat);
      return {
        data: await api.appendToSessionStream(op.session, op.io, body, reqOpts(op)),
      };
    }
    case "appendMany": {
      const data = [];
      for (const body of op.bodies) {
        data.push(await api.appendToSessionStream(op.session, op.io, body, reqOpts(op)));
      }
      return { data };
    }
    case "records":
      return {
        data: await api.readSessionStreamRecords(
          op.session,
          op.io,
          op.afterEventId === undefined ? undefined : { afterEventId: String(op.afterEventId) }
        ),
      };
    case "subscribe":
      return runSubscribe(op);
    case "publicToken": {
      const config = { baseURL: url, accessToken: op.token ?? secretKey };
      const options = { scopes: op.scopes, expirationTime: op.expirationTime };
      let token;
      await auth.withAuth(config, async () => {
        token = await auth.createPublicToken(options);
      });
      return { token };
    }
    case "parallel":
      // Every entry of `ops` at once; one result per entry, in order. An entry that is a
      // list runs as a sequence and yields the list of its results.
      return {
        results: await Promise.all(
          op.ops.map((inner) =>
            Array.isArray(inner) ? runOps(inner) : runOps([inner]).then((r) => r[0])
          )
        ),
      };
    case "sleep":
      await sleep(op.ms ?? 0);
      return {};
    default:
      throw new Error(`unknown op ${op.op}`);
  }
}

async function runOps(ops) {
  const results = [];
  for (const op of ops) {
    try {
      results.push({ ok: true, value: await runOp(op) });
    } catch (err) {
      results.push({ ok: false, error: describeError(err) });
    }
  }
  return results;
}

// A quick manual check against `sessions-client serve` (no Python needed).
async function smoke() {
  const externalId = `smoke-${Date.now()}`;
  const [created] = await runOps([
    {
      op: "create",
      body: {
        type: "chat.agent",
        taskIdentifier: "smoke",
        triggerConfig: { basePayload: {} },
        externalId,
      },
    },
  ]);
  if (!created.ok) return { created };
  const token = created.value.data.publicAccessToken;
  const results = await runOps([
    { op: "append", session: externalId, io: "in", body: '{"text":"hello"}', token },
    { op: "append", session: externalId, io: "out", body: '{"text":"out"}' },
    { op: "records", session: externalId, io: "in" },
    { op: "subscribe", session: externalId, io: "out", timeoutInSeconds: 1, stopAfter: 1 },
  ]);
  return { created, results };
}

async function runProgram(program) {
  url = program.url ?? defaultUrl;
  secretKey = program.key ?? defaultKey;
  return { results: await runOps(program.ops ?? []) };
}

async function serve() {
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line.trim()) continue;
    let out;
    try {
      out = await runProgram(JSON.parse(line));
    } catch (err) {
      out = { fatal: describeError(err) };
    }
    process.stdout.write(`${JSON.stringify(out)}\n`);
  }
  return null;
}

async function main() {
  if (argv[0] === "smoke") {
    return smoke();
  }
  if (serveMode) {
    return serve();
  }
  let input = "";
  for await (const chunk of process.stdin) input += chunk;
  return runProgram(JSON.parse(input));
}

main().then(
  (out) => {
    if (out !== null) process.stdout.write(`${JSON.stringify(out)}\n`);
    process.exit(0);
  },
  (err) => {
    process.stdout.write(`${JSON.stringify({ fatal: describeError(err) })}\n`);
    process.exit(1);
  }
);
