// The `ollama` npm package (ollama-js) against an Ollama API: node client.mjs BASE_URL
// Prints one JSON object of what each call returned; the Python test asserts on it.
import { Ollama } from 'ollama'

const ollama = new Ollama({ host: process.argv[2] })
const out = {}
const hello = [{ role: 'user', content: 'Hello there' }]
const add = {
  type: 'function',
  function: {
    name: 'add',
    description: 'Add two integers',
    parameters: {
      type: 'object',
      required: ['a', 'b'],
      properties: { a: { type: 'integer' }, b: { type: 'integer' } },
    },
  },
}

out.version = (await ollama.version()).version
out.list = (await ollama.list()).models.map((m) => m.model)
const shown = await ollama.show({ model: 'llama3.2' })
out.capabilities = shown.capabilities
out.pull = []
for await (const part of await ollama.pull({ model: 'all-minilm:latest', stream: true })) {
  out.pull.push(part.status)
}
out.listAfterPull = (await ollama.list()).models.map((m) => m.model)
const generated = await ollama.generate({ model: 'llama3.2', prompt: 'Why?' })
out.generate = { response: generated.response, done: generated.done, evalCount: generated.eval_count }
let streamed = ''
for await (const part of await ollama.generate({ model: 'llama3.2', prompt: 'Why?', stream: true })) {
  streamed += part.response
}
out.generateStreamed = streamed
const chatted = await ollama.chat({ model: 'llama3.2', messages: hello })
out.chat = chatted.message.content
streamed = ''
for await (const part of await ollama.chat({ model: 'llama3.2', messages: hello, stream: true })) {
  streamed += part.message.content
}
out.chatStreamed = streamed
const json = await ollama.chat({ model: 'llama3.2', messages: hello, format: 'json' })
out.formatJson = JSON.parse(json.message.content)
const tooled = await ollama.chat({ model: 'llama3.2', messages: hello, tools: [add] })
out.toolCalls = tooled.message.tool_calls
try {
  await ollama.chat({ model: 'tinyllama', messages: hello, tools: [add] })
  out.noToolsError = null
} catch (error) {
  out.noToolsError = { message: error.message, status: error.status_code }
}
out.embed = (await ollama.embed({ model: 'nomic-embed-text', input: ['a', 'b'] })).embeddings.map(
  (e) => e.length,
)
out.ps = (await ollama.ps()).models.map((m) => m.model)
await ollama.delete({ model: 'all-minilm:latest' })
out.listAfterDelete = (await ollama.list()).models.map((m) => m.model)
process.stdout.write(JSON.stringify(out) + '\n')
