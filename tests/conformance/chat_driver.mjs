// Chat conformance driver: the official AgentChat (@trigger.dev/sdk/chat) against a server.
//
// Usage:
//   node chat_driver.mjs --serve      one program per stdin line, one result line per program
//   node chat_driver.mjs < program    one program, then exit
//
// A program is {"url", "key", "steps": [step, ...]}; the steps run in order against named
// AgentChat instances and yield one result each: {"results": [...]}, where a result is
// {"ok": true, "value": ...} or {"ok": false, "error": {"name", "message"}}.
//
// Steps (every one names its chat with "chat"):
//   new        {chat, agent?, id?, clientData?, resumeFrom?, session?}  -> {id}   (resumeFrom:
//              the name of a chat whose id and `session` ({lastEventId}) the new AgentChat
//              hydrates from; session: a `session` to hydrate from, with `id`)
//   send       {chat, text, read?}      read: "text" (default), "result", "chunks"
//   regenerate {chat}                   -> the reply's text
//   action     {chat, action}           -> the chunks
//   stopAfter  {chat, text, chunks}     read `chunks` chunks, call stop(), drain the stream
//                                       -> {before: [...], after: [...]}
//   close      {chat}                   -> close()'s boolean
//   preload    {chat}                   -> preload()'s session
//   session    {chat}                   -> {id, session}
//   reconnect  {chat}                   -> null (reconnect() gave no stream), else {chunks,
//              ms: how long until the stream closed, peek: the X-Peek-Settled it sent,
//              settled: the X-Session-Settled answered} (its last `.out` read)
import { createInterface } from "node:readline";
import { configure } from "@trigger.dev/sdk";
import { AgentChat, ChatStream } from "@trigger.dev/sdk/chat";

const STREAM_TIMEOUT_SECONDS = 30;

// Every AgentChat's `.out` reads: {peek, settled} (the X-Peek-Settled header it sent, the
// X-Session-Settled header it got), recorded by the fetch it is given.
const READS = new WeakMap();

function recordingFetch(reads) {
  return async (url, init) => {
    const response = await fetch(url, init);
    if (String(url).endsWith("/out") && (init?.method ?? "GET") === "GET") {
      reads.push({
        peek: new Headers(init?.headers).get("X-Peek-Settled"),
        settled: response.headers.get("X-Session-Settled"),
      });
    }
    return response;
  };
}

async function readAll(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

async function runStep(chats, step) {
  const chat = chats.get(step.chat);
  switch (step.op) {
    case "new": {
      const reads = [];
      const options = {
        agent: step.agent ?? "echo",
        id: step.id,
        clientData: step.clientData,
        streamTimeoutSeconds: STREAM_TIMEOUT_SECONDS,
        fetch: recordingFetch(reads),
      };
      if (step.session !== undefined) options.session = step.session;
      if (step.resumeFrom !== undefined) {
        const source = chats.get(step.resumeFrom);
        options.id = source.id;
        options.session = source.session;
      }
      const created = new AgentChat(options);
      chats.set(step.chat, created);
      READS.set(created, reads);
      return { id: created.id };
    }
    case "send": {
      const stream = await chat.sendMessage(step.text);
      if (step.read === "chunks") return readAll(stream);
      if (step.read === "result") return stream.result();
      return stream.text();
    }
    case "regenerate": {
      const raw = await chat.sendRaw([], { trigger: "regenerate-message" });
      return new ChatStream(raw).text();
    }
    case "action":
      return readAll(await chat.sendAction(step.action));
    case "stopAfter": {
      const stream = await chat.sendMessage(step.text);
      const reader = stream.stream.getReader();
      const before = [];
      while (before.length < step.chunks) {
        const { done, value } = await reader.read();
        if (done) break;
        before.push(value);
      }
      await chat.stop();
      const after = [];
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        after.push(value);
      }
      return { before, after };
    }
    case "close":
      return chat.close();
    case "preload":
      return chat.preload();
    case "session":
      return { id: chat.id, session: chat.session };
    case "reconnect": {
      const started = Date.now();
      const stream = await chat.reconnect();
      if (stream === null) return null;
      const chunks = await readAll(stream);
      const reads = READS.get(chat);
      const read = reads[reads.length - 1] ?? {};
      return { chunks, ms: Date.now() - started, peek: read.peek, settled: read.settled };
    }
    default:
      throw new Error(`unknown step ${JSON.stringify(step.op)}`);
  }
}

async function runProgram(program) {
  configure({ baseURL: program.url, accessToken: program.key });
  const chats = new Map();
  const results = [];
  for (const step of program.steps) {
    try {
      results.push({ ok: true, value: (await runStep(chats, step)) ?? null });
    } catch (error) {
      results.push({ ok: false, error: { name: error?.name, message: String(error?.message) } });
    }
  }
  return { results };
}

async function main() {
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  if (process.argv.includes("--serve")) {
    for await (const line of lines) {
      if (!line.trim()) continue;
      let out;
      try {
        out = await runProgram(JSON.parse(line));
      } catch (error) {
        out = { fatal: String(error?.stack ?? error) };
      }
      process.stdout.write(JSON.stringify(out) + "\n");
    }
    return;
  }
  let text = "";
  for await (const line of lines) text += line + "\n";
  process.stdout.write(JSON.stringify(await runProgram(JSON.parse(text))) + "\n");
}

await main();
