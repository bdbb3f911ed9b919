// The official browser chat transport, bundled for the test page (npm run build).
// node:http2 stays external: only the SDK's server-side S2 transport imports it, lazily.
export { TriggerChatTransport } from "@trigger.dev/sdk/chat";
