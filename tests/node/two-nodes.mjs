// Clients on two Quire processes that share PostgreSQL and Redis:
// `node two-nodes.mjs URL_1 URL_2 DOCUMENT TOKEN`. Two clients on each node write at once;
// all four must converge and each must see the presence of the clients on the other node.
// Prints one JSON line; exits non-zero when a check fails.
import { WebSocket } from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'

const [url1, url2, documentId, token] = process.argv.slice(2)

function client (url, name) {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(url, documentId, doc, { WebSocketPolyfill: WebSocket, params: { token }, disableBc: true })
  provider.awareness.setLocalStateField('user', { name })
  // Paragraphs in the PRD layout (docs/crdt-layout.md), so that the REST API reads them too.
  const body = doc.getXmlFragment('default')
  const paragraphs = () => body.toArray().map((p) => p.toArray().map((t) => t.toString()).join(''))
  const say = (words) => {
    const p = new Y.XmlElement('paragraph')
    p.insert(0, [new Y.XmlText(words)])
    body.insert(body.length, [p])
  }
  return { name, doc, provider, paragraphs, say }
}

async function until (check, what, ms = 10000) {
  const start = Date.now()
  while (!check()) {
    if (Date.now() - start > ms) throw new Error(`timed out: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

const result = {}
try {
  const clients = [client(url1, 'one-a'), client(url1, 'one-b'), client(url2, 'two-a'), client(url2, 'two-b')]
  await until(() => clients.every((c) => c.provider.synced), 'sync')
  // Each writes ten paragraphs, interleaved with the others.
  for (let i = 0; i < 10; i++) {
    for (const c of clients) c.say(`${c.name}:${i}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  const same = () => clients.every((c) => JSON.stringify(c.paragraphs()) === JSON.stringify(clients[0].paragraphs()))
  await until(() => same() && clients[0].paragraphs().length === 40, 'convergence')
  result.converged = clients[0].paragraphs()
  const names = (c) => [...c.provider.awareness.getStates().values()].map((s) => s.user?.name).filter(Boolean).sort()
  await until(() => clients.every((c) => names(c).length === 4), 'presence across nodes')
  result.presence = names(clients[0])
  // One leaves node 2: the clients on node 1 see it go.
  clients[3].provider.destroy()
  await until(() => names(clients[0]).length === 3, 'departure across nodes')
  result.after_leave = names(clients[0])
  for (const c of clients.slice(0, 3)) c.provider.destroy()
  console.log(JSON.stringify({ ok: true, ...result }))
  process.exit(0)
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e), ...result }))
  process.exit(1)
}
