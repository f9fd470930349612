// What the browser benchmarks share: a release `quire serve` on SQLite in a temporary
// directory, Debian's Chromium (playwright-core from web/node_modules), and an account
// signed up with a browser session whose cookies every later context reuses.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { buildQuire, freePort } from '../quire.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '../..')
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
export const quantile = (xs, q) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q * s.length))] }

/** `--name value` from the command line, or `fallback`. */
export function option (name, fallback) {
  const args = process.argv.slice(2)
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? args[i + 1] : fallback
}

/** Quire (QUIRE_BIN, or the release build) and Chromium, started; `stop()` ends both. */
export async function start (env = {}) {
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const dir = mkdtempSync(join(tmpdir(), 'quire-web-bench-'))
  const server = spawn(process.env.QUIRE_BIN ?? buildQuire(), ['serve', '--addr', `127.0.0.1:${port}`, '--data-dir', dir, '--fetch-models', 'false', '--models-dir', join(dir, 'none')], {
    env: { ...process.env, QUIRE_LOG: 'warn', QUIRE_RATE_LIMIT_DEFAULT: '1000000/min', ...env },
    stdio: ['ignore', 'ignore', 'inherit']
  })
  for (let i = 0; ; i++) {
    if (await fetch(`${base}/healthz`).then(() => true, () => false)) break
    if (i > 300) throw new Error('quire did not start')
    await sleep(100)
  }
  const { chromium } = await import(pathToFileURL(join(root, 'web/node_modules/playwright-core/index.mjs')).href)
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking']
  })
  const stop = async () => {
    await browser.close()
    server.kill('SIGTERM')
    await new Promise((resolve) => server.once('exit', resolve))
    rmSync(dir, { recursive: true, force: true })
  }
  return { base, server, browser, stop }
}

/** Signs up one account: its page, a JSON `call` with its session, its workspace, and the
 * cookies (`state`) for new contexts. */
export async function account (browser, base) {
  const setup = await browser.newContext()
  const page = await setup.newPage()
  await page.goto(base + '/signin')
  const call = (method, path, body) => page.evaluate(async ([method, path, body]) => {
    const csrf = document.cookie.split('; ').find((c) => c.startsWith('quire_csrf='))?.split('=')[1] ?? ''
    const r = await fetch(path, { method, headers: { 'content-type': 'application/json', 'x-csrf-token': csrf }, body: body && JSON.stringify(body) })
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`)
    return r.status === 204 ? null : r.json()
  }, [method, path, body])
  await call('POST', '/api/v1/auth/signup', { email: 'bench@example.com', password: 'correct horse battery', name: 'Bench', cookie: true })
  const ws = (await call('GET', '/api/v1/workspaces')).items[0].slug
  return { page, call, ws, state: await setup.storageState() }
}
