// Crash-test clients: `node crash.mjs edit URL DOCUMENT TOKEN` keeps writing numbered tokens
// through one client while a second reports, every 50 ms, the text it has received (what
// the server accepted and relayed). `node crash.mjs read URL DOCUMENT TOKEN` prints the text.
import { WebSocket } from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'

const [mode, url, documentId, token] = process.argv.slice(2)
const open = () => {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(url, documentId, doc, { WebSocketPolyfill: WebSocket, params: { token }, disableBc: true })
  return { doc, provider, text: doc.getText('body') }
}
const synced = (c) => new Promise((resolve) => c.provider.once('sync', () => resolve()))

if (mode === 'read') {
  const c = open()
  await synced(c)
  await new Promise((resolve) => setTimeout(resolve, 200))
  console.log(JSON.stringify({ text: c.text.toString() }))
  process.exit(0)
}

const writer = open()
const watcher = open()
await Promise.all([synced(writer), synced(watcher)])
let i = 0
setInterval(() => {
  if (writer.provider.wsconnected) writer.text.insert(writer.text.length, `w${i++};`)
}, 5)
let last = ''
setInterval(() => {
  const now = watcher.text.toString()
  if (now !== last && watcher.provider.wsconnected) {
    last = now
    console.log(JSON.stringify({ seen: now }))
  }
}, 50)
