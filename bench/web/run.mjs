// bench/web: the web app as a person meets it, in Debian's Chromium against a release
// `quire serve` on SQLite started here:
//   1. the JavaScript and CSS sent for the editor page (bytes on the wire, gzip), cold cache;
//   2. navigation to an editable document, cold cache, for a 50-section PRD and a 5 MB one
//      (median and worst of 5 runs each);
//   3. keystroke to render in a second browser on the same document (p50, p95 of 200 keys).
// Goals (issue 18): under 350 KB, under 1.5 s, p95 under 50 ms.
//
//   node bench/web/run.mjs [--runs 5] [--keys 200] [--json FILE] [--profile FILE]
//
// --profile records a CPU profile of one more cold visit to the 5 MB document (Chrome's
// .cpuprofile, for DevTools) and prints where its main thread spent the time, by function.
// Uses playwright-core from web/node_modules (the app's own dev dependency); builds Quire
// with `cargo build --release -p quire` when needed (QUIRE_BIN names another binary).
import { writeFileSync } from 'node:fs'
import { account, option, quantile, sleep, start } from './lib.mjs'

const runs = Number(option('runs', '5'))
const keys = Number(option('keys', '200'))
// A 5 MB document is written in one request here: the body limit is raised for it.
const { base, browser, stop } = await start({ QUIRE_MAX_BODY_BYTES: String(16 << 20) })
const results = {}
try {
  // One account, signed in with a browser session whose cookies every context reuses.
  const { call, ws, state } = await account(browser, base)
  const newDoc = async (title, markdown) => {
    const doc = await call('POST', `/api/v1/workspaces/${ws}/documents`, { kind: 'prd', title })
    await call('PUT', `/api/v1/documents/${doc.id}/content`, { format: 'markdown', content: markdown })
    return doc.id
  }
  const paragraph = (i) => `Paragraph ${i}: field teams lose notes offline and the sync must keep every edit, in order, without asking anyone to merge by hand.`
  const fifty = '# Fifty sections\n\n' + Array.from({ length: 50 }, (_, s) => `## Section ${s + 1}\n\n${Array.from({ length: 4 }, (_, p) => paragraph(s * 4 + p)).join('\n\n')}\n`).join('\n')
  let big = '# Five megabytes\n\n'
  for (let s = 0; big.length < 5_000_000; s++) big += `## Part ${s + 1}\n\n${Array.from({ length: 20 }, (_, p) => paragraph(s * 20 + p)).join('\n\n')}\n\n`
  const docs = { '50 sections': await newDoc('Fifty sections', fifty), '5 MB': await newDoc('Five megabytes', big) }
  results.documents = { '50 sections': fifty.length, '5 MB': big.length }

  /** A cold visit: a fresh context (no cache, no IndexedDB) with the session's cookies. */
  async function coldVisit (id, lastHeading, profileTo) {
    const context = await browser.newContext({ storageState: state })
    const p = await context.newPage()
    const cdp = profileTo && await context.newCDPSession(p)
    if (cdp) {
      await cdp.send('Profiler.enable')
      await cdp.send('Profiler.setSamplingInterval', { interval: 250 })
      await cdp.send('Profiler.start')
    }
    let js = 0
    let css = 0
    p.on('requestfinished', async (request) => {
      const type = request.resourceType()
      if (type !== 'script' && type !== 'stylesheet') return
      const sizes = await request.sizes().catch(() => null)
      if (!sizes) return
      if (type === 'script') js += sizes.responseBodySize
      else css += sizes.responseBodySize
    })
    const t0 = Date.now()
    await p.goto(`${base}/w/${ws}/d/${id}`)
    await p.waitForFunction((heading) => {
      const prose = document.querySelector('.editor-page .prose[contenteditable="true"]')
      return !!prose && [...prose.querySelectorAll('h2')].some((h) => h.textContent === heading)
    }, lastHeading, { timeout: 60_000, polling: 'raf' })
    const ms = Date.now() - t0
    if (cdp) writeProfile((await cdp.send('Profiler.stop')).profile, profileTo, ms)
    await context.close()
    return { ms, js, css }
  }

  /** Saves a CPU profile and prints the functions that took the most of it (self time). */
  function writeProfile (profile, file, ms) {
    writeFileSync(file, JSON.stringify(profile))
    const self = new Map()
    const deltas = profile.timeDeltas
    const byId = new Map(profile.nodes.map((n) => [n.id, n]))
    profile.samples.forEach((id, i) => {
      const f = byId.get(id).callFrame
      const key = `${f.functionName || '(anonymous)'} ${f.url.split('/').pop()}:${f.lineNumber + 1}`
      self.set(key, (self.get(key) ?? 0) + (deltas[i] ?? 0) / 1000)
    })
    const top = [...self].sort((a, b) => b[1] - a[1]).slice(0, 25)
    console.log(`profile of a cold visit to the 5 MB document (${ms} ms), written to ${file}; self time by function:`)
    for (const [k, v] of top) console.log(`  ${v.toFixed(0).padStart(6)} ms  ${k}`)
  }

  const sizes = await coldVisit(docs['50 sections'], 'Section 50')
  results.bundle = { js_gzip_bytes: sizes.js, css_gzip_bytes: sizes.css, total_kb: (sizes.js + sizes.css) / 1024 }
  console.log(`editor page, cold: JavaScript ${(sizes.js / 1024).toFixed(1)} KB + CSS ${(sizes.css / 1024).toFixed(1)} KB = ${results.bundle.total_kb.toFixed(1)} KB on the wire (goal < 350 KB)`)

  results.editable = {}
  for (const [name, id] of Object.entries(docs)) {
    const heading = name === '5 MB' ? big.match(/## (Part \d+)\n[^#]*$/)[1] : 'Section 50'
    const times = []
    for (let i = 0; i < runs; i++) times.push((await coldVisit(id, heading)).ms)
    results.editable[name] = { median_ms: quantile(times, 0.5), worst_ms: Math.max(...times), runs: times }
    console.log(`navigation to editable, cold, ${name}: median ${quantile(times, 0.5)} ms, worst ${Math.max(...times)} ms over ${runs} (goal < 1500 ms)`)
  }

  const profileTo = option('profile')
  if (profileTo) await coldVisit(docs['5 MB'], big.match(/## (Part \d+)\n[^#]*$/)[1], profileTo)

  // Two browsers on one document: each key typed in A, timed until B shows it.
  const typing = await newDoc('Typing', '# Typing\n\nStart:\n')
  const [ca, cb] = [await browser.newContext({ storageState: state }), await browser.newContext({ storageState: state })]
  const [a, b] = [await ca.newPage(), await cb.newPage()]
  for (const p of [a, b]) {
    await p.goto(`${base}/w/${ws}/d/${typing}`)
    await p.locator('.save-state[data-state="saved"]').waitFor({ timeout: 30_000 })
  }
  await b.evaluate(() => {
    window.__seen = []
    const para = [...document.querySelectorAll('.editor-page .prose p')].find((x) => x.textContent.startsWith('Start:'))
    // The text alone: the other browser's caret and name are drawn into the paragraph too.
    const text = () => {
      const copy = para.cloneNode(true)
      copy.querySelectorAll('.collaboration-carets__caret').forEach((c) => c.remove())
      return copy.textContent
    }
    let last = text().length
    new MutationObserver(() => {
      const now = performance.timeOrigin + performance.now()
      const len = text().length
      for (let i = last; i < len; i++) window.__seen.push(now)
      last = Math.max(last, len)
    }).observe(para, { characterData: true, childList: true, subtree: true })
  })
  await a.evaluate(() => {
    window.__typed = []
    // Characters only (not the End that puts the caret in place).
    document.addEventListener('keydown', (e) => e.key.length === 1 && window.__typed.push(performance.timeOrigin + performance.now()), true)
  })
  await a.locator('.editor-page .prose p', { hasText: 'Start:' }).click()
  await a.keyboard.press('End')
  for (let i = 0; i < keys; i++) {
    await a.keyboard.type('abcdefghij'[i % 10])
    await sleep(60)
  }
  await b.waitForFunction((n) => window.__seen.length >= n, keys, { timeout: 30_000 })
  const typed = await a.evaluate(() => window.__typed)
  const seen = await b.evaluate(() => window.__seen)
  const latencies = typed.map((t, i) => seen[i] - t)
  results.keystroke = { p50_ms: quantile(latencies, 0.5), p95_ms: quantile(latencies, 0.95), max_ms: Math.max(...latencies), keys }
  console.log(`keystroke to render in another browser: p50 ${results.keystroke.p50_ms.toFixed(1)} ms, p95 ${results.keystroke.p95_ms.toFixed(1)} ms, worst ${results.keystroke.max_ms.toFixed(1)} ms over ${keys} keys (goal p95 < 50 ms)`)
  await ca.close()
  await cb.close()
} finally {
  await stop()
}
const json = option('json')
if (json) writeFileSync(json, JSON.stringify(results, null, 2))
