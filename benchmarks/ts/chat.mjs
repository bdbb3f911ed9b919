// Benchmark peer: the official AgentChat (@trigger.dev/sdk/chat) against a loopback server.
//
//   node chat.mjs URL SECRET_KEY TURNS WARMUP TEXT
//
// Runs WARMUP + TURNS turns on one AgentChat; for each measured turn prints nothing and at
// the end one JSON line {"first": [ms...], "text": [ms...]}: from the sendMessage() call to
// the first text-delta chunk, and to text() returning (the rest of the turn read).
import { performance } from "node:perf_hooks";
import { configure } from "@trigger.dev/sdk";
import { AgentChat } from "@trigger.dev/sdk/chat";

const [url, key, turnsArg, warmupArg, text] = process.argv.slice(2);
configure({ baseURL: url, accessToken: key });
const chat = new AgentChat({ agent: "echo" });
const first = [];
const done = [];
const turns = Number(turnsArg);
const warmup = Number(warmupArg);
for (let i = 0; i < warmup + turns; i++) {
  const started = performance.now();
  const stream = await chat.sendMessage(text);
  let firstAt;
  for await (const chunk of stream) {
    if (chunk.type === "text-delta") {
      firstAt = performance.now();
      break;
    }
  }
  await stream.text();
  const endedAt = performance.now();
  if (firstAt === undefined) throw new Error("a turn without a text delta");
  if (i >= warmup) {
    first.push(firstAt - started);
    done.push(endedAt - started);
  }
}
process.stdout.write(JSON.stringify({ first, text: done }) + "\n");
