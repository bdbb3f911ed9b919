// Benchmark peer: the official TypeScript SDK's SSEStreamSubscription reads a
// loopback SSE stream until EXPECT records have arrived, then prints
// {"records", "seconds", "cpu_seconds"} as JSON. Node's start-up and the SDK import are not timed.
//
//   node benchmarks/ts/read.mjs URL TOKEN EXPECT
//
// The subscription handles both wire shapes: v2 (X-Stream-Version: v2) gets the
// batch decoding with the part-id dedup window; v1 gets one JSON.parse per event.
import { SSEStreamSubscription } from "@trigger.dev/core/v3";

const [url, token, expectArg] = process.argv.slice(2);
const expect = Number.parseInt(expectArg, 10);

const start = performance.now();
const cpuStart = process.cpuUsage();
const subscription = new SSEStreamSubscription(url, {
  headers: { Authorization: `Bearer ${token}` },
  timeoutInSeconds: 60,
  maxRetries: 0,
});
const stream = await subscription.subscribe();
const reader = stream.getReader();
let records = 0;
while (records < expect) {
  const { done, value } = await reader.read();
  if (done) break;
  if (value.chunk !== undefined) records += 1;
}
const seconds = (performance.now() - start) / 1000;
const cpu = process.cpuUsage(cpuStart);
const cpuSeconds = (cpu.user + cpu.system) / 1e6;
await reader.cancel();
console.log(JSON.stringify({ records, seconds, cpu_seconds: cpuSeconds, bytes: 0 }));
process.exit(0);
