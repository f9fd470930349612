// What the Node benchmarks share: Quire's release binary, built when needed, and a free
// port on 127.0.0.1.
import { spawnSync } from 'node:child_process'
import { createServer } from 'node:net'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
let quireBin

/** `cargo build --release -p quire`, once per run; the path of the binary it made. */
export function buildQuire () {
  if (quireBin) return quireBin
  const out = spawnSync('cargo', ['build', '--release', '-p', 'quire', '--message-format=json-render-diagnostics'], {
    cwd: root, stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 28
  })
  if (out.status !== 0) throw new Error('cargo build --release -p quire failed')
  for (const line of out.stdout.toString().split('\n')) {
    if (!line.startsWith('{')) continue
    const m = JSON.parse(line)
    if (m.reason === 'compiler-artifact' && m.target.kind.includes('bin') && m.target.name === 'quire') quireBin = m.executable
  }
  if (!quireBin) throw new Error('cargo did not report the quire binary')
  return quireBin
}

/** A port nothing listens on now. */
export function freePort () {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}
