// Starts a peer server for bench/collab: `node peers.mjs hocuspocus PORT`. Hocuspocus runs
// with no extensions (in memory, as @y/websocket-server without YPERSISTENCE).
import { Server } from '@hocuspocus/server'

const [name, port] = process.argv.slice(2)
if (name !== 'hocuspocus') throw new Error(`unknown peer ${name}`)
const server = new Server({ port: Number(port), address: '127.0.0.1', quiet: true })
await server.listen()
