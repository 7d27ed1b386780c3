// An independent JSON-RPC client for n3d: vscode-jsonrpc (what VS Code extensions use)
// over the Unix socket with LSP Content-Length framing. Driven by tests/rpc/test_editors.py.
// Prints one JSON line per step on stdout; waits for "go" on stdin before expecting the event.
"use strict";
const net = require("net");
const readline = require("readline");
const rpc = require("vscode-jsonrpc/node");

function out(step, value) {
  process.stdout.write(JSON.stringify({ step, value }) + "\n");
}

async function main() {
  const socket = net.createConnection(process.argv[2]);
  await new Promise((resolve, reject) => { socket.once("connect", resolve); socket.once("error", reject); });
  const conn = rpc.createMessageConnection(
    new rpc.SocketMessageReader(socket), new rpc.SocketMessageWriter(socket));
  const gotEvent = new Promise((resolve) => conn.onNotification("event", resolve));
  conn.listen();

  out("status", await conn.sendRequest("status"));
  out("positional", await conn.sendRequest("subtract", 42, 23));

  const progress = [];
  conn.onProgress(new rpc.ProgressType(), "tok", (value) => progress.push(value.kind));
  out("progress_result", await conn.sendRequest("progress", { steps: 2, workDoneToken: "tok" }));
  out("progress", progress);

  try {
    await conn.sendRequest("fail", { kind: "ollama" });
  } catch (err) {
    out("error", { code: err.code, message: err.message, data: err.data });
  }

  const source = new rpc.CancellationTokenSource();
  const sleeping = conn.sendRequest("sleep", { seconds: 30 }, source.token);
  setTimeout(() => source.cancel(), 100);
  try {
    await sleeping;
    out("cancel", "not cancelled");
  } catch (err) {
    out("cancel", { code: err.code });
  }

  out("subscribed", await conn.sendRequest("events.subscribe", { topics: ["server.state"] }));
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) { if (line.trim() === "go") break; }
  out("event", await gotEvent);
  lines.close();
  conn.dispose();
  socket.end();
  process.stdin.destroy();
}

main().catch((err) => { out("failure", String(err && err.stack || err)); process.exit(1); });
