// bench/web/board.mjs: a 1,000-item moodboard (issue 19), in Debian's Chromium against a
// release `quire serve` on SQLite started here:
//   1. writing the board over the REST API, and reading it back;
//   2. joining it cold (a fresh browser: no cache, no IndexedDB) until all 1,000 items are on
//      the canvas and the board says saved, median and worst of N runs; the page's JS heap
//      and the server's resident memory after;
//   3. one person drags an item: how long until a second browser draws it where it went
//      (p50, p95 over the drag's moves), and the dragging browser's frame time.
//
//   node bench/web/board.mjs [--runs 5] [--items 1000] [--json FILE]
//
// Uses playwright-core from web/node_modules; builds Quire with `cargo build --release -p
// quire` when needed (QUIRE_BIN names another binary).
import { readFileSync, writeFileSync } from 'node:fs'
import { account, option, quantile, sleep, start } from './lib.mjs'

const runs = Number(option('runs', '5'))
const count = Number(option('items', '1000'))
const rssMiB = (pid) => Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]) / 1024

const { base, server, browser, stop } = await start()
const results = { items: count }
try {
  const { page, call, ws, state } = await account(browser, base)

  // 40 distinct photographs' worth of images (painted here), shared by the board's images.
  const shas = await page.evaluate(async (ws) => {
    const csrf = document.cookie.split('; ').find((c) => c.startsWith('quire_csrf='))?.split('=')[1] ?? ''
    const out = []
    for (let i = 0; i < 40; i++) {
      const c = document.createElement('canvas')
      c.width = 960
      c.height = 640
      const ctx = c.getContext('2d')
      const g = ctx.createLinearGradient(0, 0, 960, 640)
      g.addColorStop(0, `hsl(${i * 9}, 40%, 70%)`)
      g.addColorStop(1, `hsl(${i * 9 + 40}, 35%, 30%)`)
      ctx.fillStyle = g
      ctx.fillRect(0, 0, 960, 640)
      for (let k = 0; k < 30; k++) {
        ctx.fillStyle = `hsla(${(i * 37 + k * 13) % 360}, 50%, 60%, 0.5)`
        ctx.fillRect((k * 97 + i * 31) % 900, (k * 53 + i * 17) % 600, 60, 40)
      }
      const blob = await new Promise((r) => c.toBlob(r, 'image/jpeg', 0.85))
      const r = await fetch(`/api/v1/workspaces/${ws}/assets?name=p${i}.jpg`, { method: 'POST', body: blob, headers: { 'content-type': 'application/octet-stream', 'x-csrf-token': csrf } })
      out.push((await r.json()).sha256)
    }
    return out
  }, ws)
  await sleep(3000) // the thumbnails are made by the pipeline meanwhile

  const doc = await call('POST', `/api/v1/workspaces/${ws}/documents`, { kind: 'moodboard', title: 'A thousand things' })
  const items = {}
  const colours = ['#fff3bf', '#d3f9d8', '#d0ebff', '#ffdeeb']
  for (let i = 0; i < count; i++) {
    const x = (i % 40) * 260
    const y = Math.floor(i / 40) * 220
    const id = `i${String(i).padStart(4, '0')}`
    if (i % 4 === 3) items[id] = { type: 'note', x, y, w: 220, h: 160, z: i, text: `Note ${i}: brushed brass handles, warm oak fronts.`, color: colours[i % 4] }
    else if (i % 8 === 1) items[id] = { type: 'swatch', x, y, w: 140, h: 180, z: i, color: `#${(0x8a6f4e + i * 331).toString(16).slice(-6).padStart(6, '0')}` }
    else items[id] = { type: 'image', x, y, w: 240, h: 160, z: i, asset: shas[i % shas.length], caption: `Reference ${i}` }
  }
  const board = { brief: { room_type: 'kitchen', style: 'japandi', notes: 'A large board.' }, items }
  let t0 = Date.now()
  await call('PUT', `/api/v1/documents/${doc.id}/content`, { format: 'json', content: board })
  results.write_ms = Date.now() - t0
  t0 = Date.now()
  const back = await call('GET', `/api/v1/documents/${doc.id}/content`)
  results.read_ms = Date.now() - t0
  if (Object.keys(back.items).length !== count) throw new Error('the board did not come back whole')
  console.log(`REST: write ${count} items ${results.write_ms} ms, read ${results.read_ms} ms (${(JSON.stringify(board).length / 1024).toFixed(0)} KB of JSON)`)

  const url = `${base}/w/${ws}/d/${doc.id}`
  /** A cold join: until every item is on the canvas and the board says saved. */
  async function coldJoin () {
    const context = await browser.newContext({ storageState: state, viewport: { width: 1440, height: 900 } })
    const p = await context.newPage()
    const t = Date.now()
    await p.goto(url)
    await p.waitForFunction((n) => document.querySelectorAll('.board-item').length === n && document.querySelector('.save-state[data-state="saved"]'), count, { timeout: 60_000, polling: 'raf' })
    const ms = Date.now() - t
    const cdp = await context.newCDPSession(p)
    await cdp.send('HeapProfiler.collectGarbage')
    const heap = await cdp.send('Runtime.getHeapUsage')
    return { ms, heapMiB: heap.usedSize / 2 ** 20, context, page: p }
  }
  const times = []
  let heap = 0
  for (let i = 0; i < runs; i++) {
    const j = await coldJoin()
    times.push(j.ms)
    heap = j.heapMiB
    await j.context.close()
  }
  results.join = { median_ms: quantile(times, 0.5), worst_ms: Math.max(...times), runs: times, js_heap_mib: +heap.toFixed(1), server_rss_mib: +rssMiB(server.pid).toFixed(1) }
  console.log(`cold join, ${count} items on the canvas and saved: median ${results.join.median_ms} ms, worst ${results.join.worst_ms} ms over ${runs}; JS heap ${results.join.js_heap_mib} MiB; server RSS ${results.join.server_rss_mib} MiB`)

  // Two people: A drags an item in 40 steps; B's canvas is watched for each position.
  const a = await coldJoin()
  const b = await coldJoin()
  // Both browsers note each position the item is drawn at, and when.
  for (const p of [a.page, b.page]) {
    await p.evaluate(() => {
      window.__seen = []
      const el = document.querySelector('.board-item[data-id="i0000"]')
      new MutationObserver(() => window.__seen.push([performance.timeOrigin + performance.now(), el.style.transform])).observe(el, { attributes: true, attributeFilter: ['style'] })
    })
  }
  await a.page.evaluate(() => {
    window.__frames = []
    let last = performance.now()
    const tick = (t) => { window.__frames.push(t - last); last = t; if (window.__frames.length < 2000) requestAnimationFrame(tick) }
    requestAnimationFrame(tick)
  })
  const box = await a.page.locator('.board-item[data-id="i0000"]').boundingBox()
  const [x, y] = [box.x + box.width / 2, box.y + box.height / 2]
  await a.page.mouse.move(x, y)
  await a.page.mouse.down()
  for (let s = 1; s <= 40; s++) {
    await a.page.mouse.move(x + s * 5, y + s * 3)
    await sleep(30)
  }
  await a.page.mouse.up()
  await sleep(1000)
  const mine = await a.page.evaluate(() => window.__seen)
  const theirs = await b.page.evaluate(() => window.__seen)
  const frames = await a.page.evaluate(() => window.__frames.slice(1))
  // Each position's delay: from A drawing the item there to B drawing it there.
  const delays = []
  for (const [at, where] of mine) {
    const hit = theirs.find(([, tr]) => tr === where)
    if (hit) delays.push(hit[0] - at)
  }
  results.drag = {
    positions: mine.length,
    seen_by_other: delays.length,
    p50_ms: delays.length ? +quantile(delays, 0.5).toFixed(1) : null,
    p95_ms: delays.length ? +quantile(delays, 0.95).toFixed(1) : null,
    frame_p50_ms: +quantile(frames, 0.5).toFixed(1),
    frame_p95_ms: +quantile(frames, 0.95).toFixed(1)
  }
  console.log(`drag seen by the other browser: ${delays.length} of ${mine.length} positions, p50 ${results.drag.p50_ms} ms, p95 ${results.drag.p95_ms} ms; dragging browser's frames p50 ${results.drag.frame_p50_ms} ms, p95 ${results.drag.frame_p95_ms} ms`)
  await a.context.close()
  await b.context.close()
} finally {
  await stop()
}
const out = option('json', null)
if (out) writeFileSync(out, JSON.stringify(results, null, 2))
