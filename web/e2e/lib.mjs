// What every browser run shares: Debian's Chromium through playwright-core, named steps that
// stop at the first failure, screenshots for a person to look at, and calls to Quire's API
// with a page's own session.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking'],
  });
}

/** The run's steps and screenshots; `problems` collects page errors from `watch`ed pages. */
export function harness(shots) {
  mkdirSync(shots, { recursive: true });
  const run = { step: '', problems: [] };
  run.check = async (name, f) => {
    run.step = name;
    await f();
    console.log(`ok - ${name}`);
  };
  /** A screenshot of the whole page from its top, or (`at`) of the window around one element. */
  run.shot = async (name, p, at = null) => {
    if (at) await at.evaluate((e) => e.scrollIntoView({ block: 'center' }));
    else await p.evaluate(() => window.scrollTo(0, 0));
    await p.screenshot({ path: join(shots, `${name}.png`), fullPage: !at });
  };
  /** Collects `p`'s errors, but for answers a step expects (401, 404, and `expected`). */
  run.watch = (p, who = '', expected = /\b(401|404)\b/) => {
    p.on('pageerror', (e) => run.problems.push(`page error${who}: ${e.message}`));
    p.on('console', (m) => m.type() === 'error' && !expected.test(m.text()) && run.problems.push(`console${who}: ${m.text()}`));
    return p;
  };
  return run;
}

export const expectVisible = (locator, what, timeout = 10_000) =>
  locator.first().waitFor({ state: 'visible', timeout }).catch(() => {
    throw new Error(`${what} is not shown`);
  });

/** A JSON call to Quire's API with the page's own session. */
export const apiCall = (p, method, path, body) =>
  p.evaluate(
    async ([method, path, body]) => {
      const csrf = document.cookie.split('; ').find((c) => c.startsWith('quire_csrf='))?.split('=')[1] ?? '';
      const r = await fetch(path, {
        method,
        headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await r.text();
      return { status: r.status, body: text ? JSON.parse(text) : null };
    },
    [method, path, body],
  );

/** Signs a new person up on the sign-up form (`at`: an invitation's page). */
export async function signUp(p, { name, email, at }) {
  await p.goto(at);
  await p.getByRole('link', { name: /^Create an account/ }).click();
  await p.getByLabel('Name').fill(name);
  await p.getByLabel('Email').fill(email);
  await p.getByLabel('Password').fill('correct horse battery');
  await p.getByRole('button', { name: 'Create account' }).click();
}

/** Waits until `f` answers true (an error counts as not yet), naming `what` when it never does. */
export async function eventually(what, f, timeout = 10_000) {
  const until = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await f();
      if (last === true) return;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > until) throw new Error(`${what} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 150));
  }
}
