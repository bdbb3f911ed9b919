// Judge for sessions_client._ui_message.assemble_message: the AI SDK's own
// readUIMessageStream (package "ai", pinned in package-lock.json) on chunk lists.
//
// stdin: one JSON array of chunk lists per line. stdout: one line per input
// line, a JSON array with, for each chunk list, {"message": <the last message
// readUIMessageStream emitted, or null when it emitted none>} plus, when the
// SDK's processing threw, "error": {"name", "message"}. readUIMessageStream
// reports such an error to onError and stops reading; `error` chunks are also
// reported to onError, as plain Errors, and are not processing errors.
// Numbers JSON cannot carry (a partial tool input "1e999" parses to Infinity)
// are written as {"$nonFinite": "Infinity" | "-Infinity" | "NaN"}.
import { createInterface } from "node:readline";
import { readUIMessageStream } from "ai";

function streamOf(chunks) {
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk);
      controller.close();
    },
  });
}

async function judge(chunks) {
  const reported = [];
  let message = null;
  const messages = readUIMessageStream({
    stream: streamOf(chunks),
    onError: (error) => reported.push(error),
  });
  for await (const emitted of messages) message = emitted;
  const result = { message };
  const thrown = reported.find((error) => !(error instanceof Error) || error.constructor !== Error);
  if (thrown !== undefined) {
    result.error = { name: String(thrown?.name), message: String(thrown?.message ?? thrown) };
  }
  return result;
}

function nonFinite(key, value) {
  return typeof value === "number" && !Number.isFinite(value) ? { $nonFinite: String(value) } : value;
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (line.trim() === "") continue;
  const results = [];
  for (const chunks of JSON.parse(line)) results.push(await judge(chunks));
  process.stdout.write(JSON.stringify(results, nonFinite) + "\n");
}
