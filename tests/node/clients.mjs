// Real Yjs clients against a running Quire: `node clients.mjs URL DOCUMENT TOKEN [VIEWER_TOKEN]`.
// Prints one JSON line with what happened; exits non-zero when a check fails.
import { WebSocket } from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'

const [url, documentId, token, viewerToken] = process.argv.slice(2)
const timeout = (ms, what) => new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms))

function client (tok, name) {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(url, documentId, doc, { WebSocketPolyfill: WebSocket, params: { token: tok }, disableBc: true })
  provider.awareness.setLocalStateField('user', { name })
  return { doc, provider, text: doc.getText('body') }
}

const synced = (c) => Promise.race([
  new Promise((resolve) => c.provider.synced ? resolve() : c.provider.once('sync', (s) => s && resolve())),
  timeout(5000, 'sync')
])

async function until (check, what) {
  const start = Date.now()
  while (!check()) {
    if (Date.now() - start > 5000) throw new Error(`timed out: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

const result = {}
try {
  // Three clients edit at once and converge.
  const clients = [client(token, 'a'), client(token, 'b'), client(token, 'c')]
  await Promise.all(clients.map(synced))
  clients.forEach((c, i) => c.text.insert(0, `[${i}]`))
  await until(() => clients.every((c) => c.text.toString() === clients[0].text.toString() && c.text.length === 9), 'convergence')
  result.converged = clients[0].text.toString()

  // Presence: each sees the others.
  await until(() => clients.every((c) => c.provider.awareness.getStates().size >= 3), 'presence')
  result.presence = clients[0].provider.awareness.getStates().size

  // A client that drops off and edits meanwhile catches up on reconnect, both ways.
  const [a, b] = clients
  a.provider.disconnect()
  a.text.insert(a.text.length, ' offline-a')
  b.text.insert(0, 'online-b ')
  a.provider.connect()
  await until(() => a.text.toString() === b.text.toString() && a.text.toString().includes('offline-a') && a.text.toString().includes('online-b'), 'reconnect')
  result.reconnected = a.text.toString()

  // A late joiner gets the whole document.
  const late = client(token, 'late')
  await synced(late)
  await until(() => late.text.toString() === a.text.toString(), 'late joiner')
  result.late = late.text.toString() === a.text.toString()

  // A viewer reads, and its edit reaches nobody.
  if (viewerToken) {
    const viewer = client(viewerToken, 'viewer')
    await synced(viewer)
    result.viewer_reads = viewer.text.toString() === a.text.toString()
    viewer.text.insert(0, 'VIEWER ')
    await new Promise((resolve) => setTimeout(resolve, 500))
    result.viewer_blocked = !a.text.toString().includes('VIEWER')
    viewer.provider.destroy()
  }
  for (const c of [...clients, late]) c.provider.destroy()
  console.log(JSON.stringify({ ok: true, ...result }))
  process.exit(0)
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e), ...result }))
  process.exit(1)
}
