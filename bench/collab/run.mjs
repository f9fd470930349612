// bench/collab: the same collaboration workloads, in one run, against Quire,
// @hocuspocus/server and @y/websocket-server, each started here on 127.0.0.1 as its own
// process, with each figure printed beside the ratio Quire/best peer.
//
//   node bench/collab/run.mjs [--only fanout,idle,presence,join,converge] [--servers quire,hocuspocus,y-websocket]
//                             [--quick] [--json FILE]
//
// The script builds Quire (`cargo build --release -p quire`) and installs the peers
// (`npm ci` here) when needed. Server CPU is read from /proc/PID/stat, memory from
// /proc/PID/status, both of the server process alone; clients run in this process.
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync, mkdtempSync, rmSync, existsSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildQuire, freePort } from '../quire.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const args = process.argv.slice(2)
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? args[i + 1] : fallback
}
const quick = args.includes('--quick')
const only = option('only', 'fanout,idle,presence,join,converge').split(',')
const serverNames = option('servers', 'quire,hocuspocus,y-websocket').split(',')

if (!existsSync(join(here, 'node_modules/@hocuspocus/server'))) {
  const npm = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: here, stdio: 'inherit' })
  if (npm.status !== 0) throw new Error('npm ci in bench/collab failed')
}
const { Client } = await import('./client.mjs')
const Y = await import('yjs')
const { Awareness, encodeAwarenessUpdate } = await import('y-protocols/awareness')

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const TICK = 100 // clock ticks per second on Linux (getconf CLK_TCK)
const cpuSeconds = (pid) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) / TICK
}
const rssBytes = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024
const quantile = (values, q) => {
  if (!values.length) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
}
const ms = (ns) => Number(ns) / 1e6


async function waitFor (check, what, timeout = 30000) {
  const start = Date.now()
  while (!(await check())) {
    if (Date.now() - start > timeout) throw new Error(`timed out: ${what}`)
    await sleep(20)
  }
}

async function http (base, method, path, body, token) {
  const res = await fetch(base + path, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body ? JSON.stringify(body) : undefined
  })
  const text = await res.text()
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`)
  return text ? JSON.parse(text) : null
}


/** Starts one server; returns its pid and a `room()` that gives a fresh document's target. */
async function start (name) {
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  let child
  let dir
  if (name === 'quire') {
    dir = mkdtempSync(join(tmpdir(), 'quire-bench-'))
    child = spawn(buildQuire(), ['serve', '--addr', `127.0.0.1:${port}`, '--data-dir', dir], {
      // Every client is the same user here: the per-caller caps would refuse most of them.
      env: { ...process.env, QUIRE_LOG: 'warn', QUIRE_RATE_LIMIT_DEFAULT: '1000000/min', QUIRE_MAX_CONNECTIONS_PER_CALLER: '100000' },
      stdio: ['ignore', 'ignore', 'inherit']
    })
  } else if (name === 'hocuspocus') {
    child = spawn(process.execPath, [join(here, 'peers.mjs'), 'hocuspocus', String(port)], { stdio: ['ignore', 'ignore', 'inherit'] })
  } else if (name === 'y-websocket') {
    child = spawn(process.execPath, [join(here, 'node_modules/@y/websocket-server/src/server.js')], {
      env: { ...process.env, HOST: '127.0.0.1', PORT: String(port) }, stdio: ['ignore', 'ignore', 'inherit']
    })
  } else {
    throw new Error(`unknown server ${name}`)
  }
  await waitFor(async () => fetch(`${base}/${name === 'quire' ? 'healthz' : ''}`).then(() => true, () => false), `${name} to listen`)
  let token
  let workspace
  if (name === 'quire') {
    const signup = await http(base, 'POST', '/api/v1/auth/signup', { email: 'bench@example.com', password: 'correct horse battery', name: 'Bench' })
    token = signup.access_token
    workspace = (await http(base, 'POST', '/api/v1/workspaces', { name: 'Bench' }, token)).id
  }
  let rooms = 0
  return {
    name,
    pid: child.pid,
    async room () {
      rooms += 1
      if (name === 'quire') {
        const doc = await http(base, 'POST', `/api/v1/workspaces/${workspace}/documents`, { kind: 'prd', title: `Bench ${rooms}` }, token)
        return { kind: 'y', url: `ws://127.0.0.1:${port}/collab`, room: doc.id, token }
      }
      const url = `ws://127.0.0.1:${port}`
      return { kind: name === 'hocuspocus' ? 'hocuspocus' : 'y', url, room: `bench-${rooms}`, token: 'bench' }
    },
    async stop () {
      child.kill('SIGKILL')
      await new Promise((resolve) => child.exitCode !== null ? resolve() : child.once('exit', resolve))
      if (dir) rmSync(dir, { recursive: true, force: true })
    }
  }
}

/** Connects `n` clients, at most 50 handshakes at a time. */
async function connectAll (n, make) {
  const clients = []
  for (let i = 0; i < n; i += 50) {
    const batch = Array.from({ length: Math.min(50, n - i) }, (_, j) => make(i + j))
    await Promise.all(batch.map((c) => c.connect()))
    clients.push(...batch)
  }
  return clients
}

// The markers a writer puts in its edits, `@@<seq>$$`, found in the raw update bytes (a
// server may merge several edits into one message).
const markersOf = (update) => {
  const buf = Buffer.from(update.buffer, update.byteOffset, update.byteLength)
  const found = []
  for (let at = buf.indexOf('@@'); at >= 0; at = buf.indexOf('@@', at + 2)) {
    const end = buf.indexOf('$$', at)
    if (end < 0) break
    found.push(Number(buf.toString('latin1', at + 2, end)))
  }
  return found
}

// 1. Fan-out: one writer, N observers; each edit's time from send to each observer.
async function fanout (server, n) {
  const target = await server.room()
  const edits = quick ? 50 : 200
  const sentAt = new Array(edits)
  const latencies = []
  const received = new Array(n).fill(0)
  const observers = await connectAll(n, (i) => new Client(target, {
    onUpdate: (update, at) => {
      for (const seq of markersOf(update)) {
        if (sentAt[seq] !== undefined) { latencies.push(ms(at - sentAt[seq])); received[i] += 1 }
      }
    }
  }))
  const doc = new Y.Doc()
  const writer = new Client(target, { doc })
  await writer.connect()
  const text = doc.getText('body')
  await sleep(500)
  const cpu0 = cpuSeconds(server.pid)
  for (let seq = 0; seq < edits; seq++) {
    sentAt[seq] = process.hrtime.bigint()
    text.insert(text.length, `@@${seq}$$`)
    await sleep(50)
  }
  await waitFor(() => received.every((r) => r === edits), 'every observer to get every edit', 10000).catch(() => {})
  const cpu = cpuSeconds(server.pid) - cpu0
  const lost = received.reduce((sum, r) => sum + (edits - r), 0)
  for (const c of [...observers, writer]) c.close()
  return { p50_ms: quantile(latencies, 0.5), p99_ms: quantile(latencies, 0.99), cpu_s: cpu, lost }
}

// 2. Idle: memory per open, synced connection.
async function idle (server) {
  const target = await server.room()
  const n = quick ? 200 : 1000
  const first = new Client(target)
  await first.connect()
  await sleep(1000)
  const before = rssBytes(server.pid)
  const clients = await connectAll(n - 1, () => new Client(target))
  await sleep(3000)
  const after = rssBytes(server.pid)
  for (const c of [first, ...clients]) c.close()
  return { kib_per_connection: (after - before) / (n - 1) / 1024, rss_mib: after / 2 ** 20 }
}

// 3. Presence: 200 clients each renew their awareness once a second.
async function presence (server) {
  const target = await server.room()
  const n = 200
  const seconds = quick ? 4 : 10
  let delivered = 0
  const clients = await connectAll(n, () => new Client(target, { onAwareness: (_, states) => { delivered += states } }))
  const states = clients.map((_, i) => {
    const awareness = new Awareness(new Y.Doc())
    awareness.setLocalState({ user: { name: `client ${i}` }, cursor: 0 })
    return awareness
  })
  await sleep(500)
  delivered = 0
  const cpu0 = cpuSeconds(server.pid)
  for (let s = 0; s < seconds; s++) {
    const tickStart = Date.now()
    for (let i = 0; i < n; i++) {
      states[i].setLocalStateField('cursor', s)
      clients[i].sendAwareness(encodeAwarenessUpdate(states[i], [states[i].clientID]))
      if (i % 20 === 19) await sleep(Math.max(0, (1000 / (n / 20)) - 1))
    }
    await sleep(Math.max(0, 1000 - (Date.now() - tickStart)))
  }
  await sleep(500)
  const cpu = cpuSeconds(server.pid) - cpu0
  for (const c of clients) c.close()
  // Each renewal reaches the other n - 1 clients (a server may echo it to the sender too, or
  // batch several clients' states in one message: states are counted, not messages).
  return { cpu_s: cpu, delivered_share: delivered / (n * (n - 1) * seconds) }
}

// 4. Join storm: 50 clients join a 5 MB document at once.
async function joinStorm (server) {
  const target = await server.room()
  const size = (quick ? 1 : 5) * 2 ** 20
  const seedDoc = new Y.Doc()
  const seeder = new Client(target, { doc: seedDoc })
  await seeder.connect()
  const text = seedDoc.getText('body')
  const chunk = 'lorem ipsum dolor sit amet, consectetur adipiscing elit. '.repeat(1800).slice(0, 100 * 1024)
  for (let written = 0; written < size; written += chunk.length) {
    text.insert(text.length, chunk)
    await sleep(10)
  }
  const expected = Y.encodeStateAsUpdate(seedDoc).byteLength
  // The document is complete on the server once a fresh client's sync carries all of it.
  await waitFor(async () => {
    const probe = new Client(target)
    await probe.connect()
    probe.close()
    return probe.syncBytes >= expected
  }, 'the server to hold the whole document', 60000)
  // The seeder stays: a server without storage (the peers here) drops a document nobody has open.
  await sleep(1000)
  const before = rssBytes(server.pid)
  let peak = before
  const sampler = setInterval(() => { peak = Math.max(peak, rssBytes(server.pid)) }, 5)
  const clients = Array.from({ length: 50 }, () => new Client(target))
  await Promise.all(clients.map((c) => c.connect()))
  clearInterval(sampler)
  peak = Math.max(peak, rssBytes(server.pid))
  const times = clients.map((c) => ms(c.syncedAt - c.started))
  const complete = clients.every((c) => c.syncBytes >= expected)
  for (const c of [seeder, ...clients]) c.close()
  return {
    p50_ms: quantile(times, 0.5),
    p99_ms: quantile(times, 0.99),
    peak_extra_mib: (peak - before) / 2 ** 20,
    doc_mib: expected / 2 ** 20,
    complete
  }
}

// 5. Convergence: 20 clients edit at random for 10 s; all end identical.
async function converge (server) {
  const target = await server.room()
  const n = 20
  const seconds = quick ? 3 : 10
  const clients = []
  for (let i = 0; i < n; i++) clients.push(new Client(target, { doc: new Y.Doc() }))
  await Promise.all(clients.map((c) => c.connect()))
  let seed = 42
  const random = () => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31 }
  const cpu0 = cpuSeconds(server.pid)
  const end = Date.now() + seconds * 1000
  let edits = 0
  while (Date.now() < end) {
    for (const c of clients) {
      const text = c.doc.getText('body')
      if (text.length > 20 && random() < 0.3) text.delete(Math.floor(random() * (text.length - 5)), 1 + Math.floor(random() * 4))
      else text.insert(Math.floor(random() * (text.length + 1)), String.fromCharCode(97 + Math.floor(random() * 26)).repeat(1 + Math.floor(random() * 3)))
      edits += 1
    }
    await sleep(50)
  }
  const stopped = Date.now()
  const same = () => clients.every((c) => c.doc.getText('body').toString() === clients[0].doc.getText('body').toString())
  const converged = await waitFor(same, 'convergence', 15000).then(() => true, () => false)
  const settle = Date.now() - stopped
  const cpu = cpuSeconds(server.pid) - cpu0
  // A late joiner must read the same document from the server.
  const late = new Client(target, { doc: new Y.Doc() })
  await late.connect()
  const serverAgrees = late.doc.getText('body').toString() === clients[0].doc.getText('body').toString()
  for (const c of [...clients, late]) c.close()
  return { converged: converged && serverAgrees, settle_ms: settle, edits, cpu_s: cpu }
}

const workloads = {
  fanout: [['fan-out N=100', (s) => fanout(s, 100)], ['fan-out N=500', (s) => fanout(s, 500)]],
  idle: [[`idle ${quick ? 200 : 1000} connections`, idle]],
  presence: [['presence 200 clients', presence]],
  join: [[`join storm 50 × ${quick ? 1 : 5} MB`, joinStorm]],
  converge: [['convergence 20 clients', converge]]
}

const results = {}
for (const key of only) {
  for (const [label, run] of workloads[key]) {
    results[label] = {}
    for (const name of serverNames) {
      const server = await start(name)
      try {
        results[label][name] = await run(server)
      } catch (e) {
        results[label][name] = { error: String(e.message || e) }
      } finally {
        await server.stop()
      }
      process.stderr.write(`${label} · ${name}: ${JSON.stringify(results[label][name])}\n`)
    }
  }
}

// The table: each figure, and Quire's ratio to the best peer (lower is better for all).
const lowerIsBetter = ['p50_ms', 'p99_ms', 'cpu_s', 'kib_per_connection', 'peak_extra_mib', 'settle_ms']
const fmt = (v) => typeof v === 'number' ? (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3)) : String(v)
const lines = [`| workload | figure | ${serverNames.join(' | ')} | Quire / best peer |`, `|---|---|${serverNames.map(() => '---:').join('|')}|---:|`]
for (const [label, byServer] of Object.entries(results)) {
  const figures = new Set(Object.values(byServer).flatMap((r) => Object.keys(r)))
  for (const figure of figures) {
    const row = serverNames.map((n) => fmt(byServer[n]?.[figure]))
    let ratio = ''
    if (lowerIsBetter.includes(figure) && byServer.quire && typeof byServer.quire[figure] === 'number') {
      const peers = serverNames.filter((n) => n !== 'quire').map((n) => byServer[n]?.[figure]).filter((v) => typeof v === 'number')
      if (peers.length) ratio = (byServer.quire[figure] / Math.min(...peers)).toFixed(2)
    }
    lines.push(`| ${label} | ${figure} | ${row.join(' | ')} | ${ratio} |`)
  }
}
console.log(lines.join('\n'))
const out = option('json')
if (out) writeFileSync(out, JSON.stringify(results, null, 2))
process.exit(0)
