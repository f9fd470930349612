// The web app in a real browser (Debian's Chromium through playwright-core) against a
// running `quire serve`: node e2e/run.mjs BASE_URL SCREENSHOT_DIR
// Every step says what it checks; the first failure ends the run with a non-zero status.
// Screenshots of each screen are written to SCREENSHOT_DIR for a person to look at.
import { loopingReply, prdReply, startFakeOpenAI } from './fake-openai.mjs';
import { apiCall, expectVisible, harness, launch } from './lib.mjs';

const [base, shots = 'screenshots'] = process.argv.slice(2);
if (!base) {
  console.error('usage: node e2e/run.mjs BASE_URL [SCREENSHOT_DIR]');
  process.exit(2);
}
// The AI provider the drafting steps use: a local server speaking OpenAI's protocol.
const fake = await startFakeOpenAI([
  prdReply('Offline notes', 'keeping every note'),
  prdReply('Offline notes', 'a daily summary for dispatchers'),
  '## Success metrics\n\n- Lost-note reports: from 12 a month to 0 within 3 months of launch.\n- 95 % of offline notes synced within 60 s of reconnecting.\n',
  // Every later call: a draft that loops, which the quality gate refuses.
  loopingReply('Field kit'),
]);

const browser = await launch();
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
const run = harness(shots);
const page = run.watch(await context.newPage());
const problems = run.problems;
const check = run.check;
const newDocument = () => page.getByRole('form', { name: 'New document' });
const shot = (name, p = page, at = null) => run.shot(name, p, at);
/** Waits until the list shows exactly `titles` (in that order with `ordered`). */
async function expectRows(titles, { ordered = false } = {}) {
  await page.waitForFunction(
    ([want, ordered]) => {
      const got = [...document.querySelectorAll('table.list tbody tr td:first-child')].map((td) => td.textContent.trim());
      return ordered ? JSON.stringify(got) === JSON.stringify(want) : JSON.stringify(got.sort()) === JSON.stringify([...want].sort());
    },
    [titles, ordered],
    { timeout: 10_000 },
  ).catch(async () => {
    const got = await page.locator('table.list tbody tr td:first-child').allTextContents();
    throw new Error(`the list shows ${JSON.stringify(got)}, not ${JSON.stringify(titles)}`);
  });
}

try {
  await check('an anonymous visit lands on sign-in', async () => {
    await page.goto(base + '/');
    await page.waitForURL('**/signin');
    await expectVisible(page.getByRole('heading', { name: 'Sign in' }), 'the sign-in heading');
    await shot('signin');
  });

  await check('a wrong password says so and keeps the person on sign-in', async () => {
    await page.getByLabel('Email').fill('nobody@example.com');
    await page.getByLabel('Password').fill('not the password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expectVisible(page.getByRole('alert'), 'an error message');
    const text = await page.getByRole('alert').first().textContent();
    if (!/password|email/i.test(text)) throw new Error(`the error does not say what failed: ${text}`);
  });

  await check('signing up leads to the new workspace', async () => {
    await page.getByRole('link', { name: 'Create an account' }).click();
    await page.getByLabel('Name').fill('Ada Lovelace');
    await page.getByLabel('Email').fill('ada@example.com');
    await page.getByLabel('Password').fill('correct horse battery');
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.waitForURL(/\/w\/[^/]+$/);
    await expectVisible(page.getByText('No documents yet'), 'the empty list');
    await expectVisible(page.getByText('ada@example.com'), 'the signed-in account');
    await shot('documents-empty');
  });
  const workspace = page.url();
  /** A new PRD from the workspace's page, opened on its drafting panel. */
  const newDraft = async (title) => {
    await page.goto(workspace);
    await page.getByRole('button', { name: 'New document' }).click();
    await newDocument().getByLabel('Title').fill(title);
    await newDocument().getByRole('button', { name: 'Create', exact: true }).click();
    await page.waitForURL(/\/d\/doc_[^/?]+\?draft/);
  };

  await check('a new document opens after it is created', async () => {
    await page.getByRole('button', { name: 'New document' }).click();
    await newDocument().getByLabel('Title').fill('Checkout redesign');
    await shot('new-document');
    await newDocument().getByRole('button', { name: 'Create', exact: true }).click();
    await page.waitForURL(/\/d\/doc_/);
    await expectVisible(page.locator('#document-title'), 'the document title');
    const title = await page.locator('#document-title').inputValue();
    if (title !== 'Checkout redesign') throw new Error(`the title reads ${JSON.stringify(title)}`);
    await shot('document');
  });

  const prd = page.url();
  const prdId = new URL(prd).pathname.split('/').pop();
  const editorOf = (p) => p.locator('.prose');
  const savedIn = (p) => p.locator('.save-state[data-state="saved"]').waitFor({ timeout: 15_000 }).catch(async () => {
    throw new Error(`the document never says saved (it says ${await p.locator('.save-state').textContent()})`);
  });
  /** The PRD's Markdown as the server has it. */
  const serverMarkdown = (doc = prdId) => page.evaluate(async (id) => {
    const r = await fetch(`/api/v1/documents/${id}/content?format=markdown`);
    return r.text();
  }, doc);
  async function serverHas(text) {
    for (let i = 0; i < 50; i++) {
      if ((await serverMarkdown()).includes(text)) return;
      await page.waitForTimeout(200);
    }
    throw new Error(`the server's copy lacks ${JSON.stringify(text)}: ${await serverMarkdown()}`);
  }

  await check('what is typed in a PRD is saved on the server, formatting included', async () => {
    await editorOf(page).click();
    await page.keyboard.type('# Goals');
    await page.keyboard.press('Enter');
    await page.keyboard.type('Cut checkout time in half.');
    await page.keyboard.press('Enter');
    await page.keyboard.type('[ ] Measure the current time');
    await savedIn(page);
    await serverHas('# Goals\n\nCut checkout time in half.');
    await serverHas('- [ ] Measure the current time');
    await expectVisible(page.locator('.outline').getByRole('button', { name: 'Goals' }), 'the heading in the outline');
    await shot('editor');
  });

  await check('every kind of block and mark the toolbar makes reaches the server', async () => {
    const prompts = ['https://example.com/spec', '/favicon.svg'];
    const answer = (d) => d.accept(prompts.shift());
    page.on('dialog', answer);
    const tool = (name) => page.getByRole('toolbar', { name: 'Formatting' }).getByRole('button', { name, exact: true }).click();
    await editorOf(page).locator('li', { hasText: 'Measure the current time' }).click();
    await page.keyboard.press('End');
    await page.keyboard.press('Enter');
    await page.keyboard.press('Enter'); // out of the task list
    await tool('Heading 2');
    await page.keyboard.type('Design');
    await page.keyboard.press('Enter');
    await tool('Bold');
    await page.keyboard.type('Bold');
    await tool('Bold');
    await page.keyboard.type(' and ');
    await tool('Italic');
    await page.keyboard.type('italic');
    await tool('Italic');
    await page.keyboard.type(' and ');
    await tool('Strikethrough');
    await page.keyboard.type('gone');
    await tool('Strikethrough');
    await page.keyboard.type(' and ');
    await tool('Code');
    await page.keyboard.type('code()');
    await tool('Code');
    await page.keyboard.type(' and the ');
    await page.keyboard.type('spec');
    await page.keyboard.press('Shift+ArrowLeft');
    await page.keyboard.press('Shift+ArrowLeft');
    await page.keyboard.press('Shift+ArrowLeft');
    await page.keyboard.press('Shift+ArrowLeft');
    await tool('Link');
    await page.keyboard.press('End');
    await page.keyboard.press('Enter');
    await tool('Bullet list');
    await page.keyboard.type('One');
    await page.keyboard.press('Enter');
    await page.keyboard.press('Tab');
    await page.keyboard.type('Nested');
    await page.keyboard.press('Enter');
    await page.keyboard.press('Enter');
    await page.keyboard.press('Enter');
    await tool('Numbered list');
    await page.keyboard.type('First');
    await page.keyboard.press('Enter');
    await page.keyboard.press('Enter');
    await tool('Quote');
    await page.keyboard.type('Customers leave at the card form.');
    await page.keyboard.press('Enter');
    await page.keyboard.press('Enter');
    await tool('Code block');
    await page.keyboard.type('select 1;');
    await page.keyboard.press('Enter');
    await page.keyboard.press('Enter');
    await page.keyboard.press('Enter');
    await tool('Divider');
    await tool('Image');
    await page.keyboard.press('Enter'); // a paragraph after the selected image
    await tool('Table');
    await page.keyboard.type('Step');
    await page.keyboard.press('Tab');
    await page.keyboard.type('Seconds');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    await page.keyboard.type('Card form');
    await page.keyboard.press('Tab');
    await page.keyboard.type('41');
    await savedIn(page);
    page.off('dialog', answer);
    for (const md of [
      '## Design',
      '**Bold** and *italic* and ~~gone~~ and `code()` and the [spec](https://example.com/spec)',
      '- One\n  - Nested',
      '1. First',
      '> Customers leave at the card form.',
      '```\nselect 1;\n```',
      '___',
      '![](/favicon.svg)',
      '| Step | Seconds |',
      '| Card form | 41 |',
    ]) {
      await serverHas(md);
    }
    await shot('editor-formatting');
  });

  // A teammate, in a browser of their own.
  const grace = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page2 = await grace.newPage();
  page2.on('pageerror', (e) => problems.push(`page error (second browser): ${e.message}`));

  await check('an invitation made in the settings brings a teammate in with her role', async () => {
    await page.goto(workspace);
    await page.getByRole('link', { name: 'Members and keys' }).click();
    await expectVisible(page.getByRole('heading', { name: /settings$/ }), 'the settings page');
    const invitations = page.getByRole('region', { name: 'Invitations' });
    await invitations.getByPlaceholder('Email (optional)').fill('grace@example.com');
    await invitations.getByLabel('Role for the invitee').selectOption({ label: 'Editor' });
    await invitations.getByRole('button', { name: 'Create invitation' }).click();
    const link = await invitations.getByLabel('Invitation link:').inputValue();
    if (!link.includes('/join?token=')) throw new Error(`the invitation link is ${link}`);
    await expectVisible(invitations.getByText('grace@example.com'), 'the open invitation');
    await shot('settings');
    await page2.goto(link);
    await page2.getByRole('link', { name: 'Create an account to join' }).click();
    await page2.getByLabel('Name').fill('Grace Hopper');
    await page2.getByLabel('Email').fill('grace@example.com');
    await page2.getByLabel('Password').fill('correct horse battery');
    await page2.getByRole('button', { name: 'Create account' }).click();
    // She lands in the workspace she was invited to.
    await page2.waitForURL(new RegExp(new URL(workspace).pathname + '$'));
    await expectVisible(page2.getByRole('link', { name: 'Checkout redesign' }), "the workspace's documents");
    await page.reload();
    const row = page.getByRole('region', { name: 'Members' }).getByRole('row', { name: /Grace Hopper/ });
    await expectVisible(row, 'Grace among the members');
    const role = await row.getByLabel('Role of Grace Hopper').inputValue();
    if (role !== 'editor') throw new Error(`Grace joined as ${role}`);
  });

  await check('an API key is shown once, works, and stops working when revoked', async () => {
    await page.goto(workspace + '/settings');
    const keys = page.getByRole('region', { name: 'API keys' });
    await keys.getByPlaceholder('Key name, e.g. CI pipeline').fill('CI pipeline');
    await keys.getByRole('button', { name: 'Create key' }).click();
    const secret = await keys.getByLabel('New API key:').inputValue();
    if (!secret.startsWith('qk_')) throw new Error(`the key reads ${secret}`);
    const me = (key) => fetch(base + '/api/v1/me', { headers: { authorization: `Bearer ${key}` } }).then((r) => r.status);
    if ((await me(secret)) !== 200) throw new Error('the new key is refused');
    await keys.getByRole('button', { name: 'Done' }).click();
    if (await keys.getByLabel('New API key:').count()) throw new Error('the secret is still shown');
    await keys.getByRole('button', { name: 'Revoke the key CI pipeline' }).click();
    await keys.getByText('CI pipeline').waitFor({ state: 'detached', timeout: 10_000 });
    if ((await me(secret)) !== 401) throw new Error('the revoked key still works');
    await page.goto(prd);
  });

  await check('a teammate opens the same PRD and sees the text', async () => {
    await page2.goto(prd);
    await expectVisible(page2.locator('.prose h1', { hasText: 'Goals' }), 'the heading Ada typed');
    await savedIn(page2);
    await page.goto(prd);
    await savedIn(page);
  });

  await check('each sees the other in the presence bar and at their caret', async () => {
    await editorOf(page2).locator('h1').click();
    await page2.keyboard.press('End');
    for (const [p, other] of [[page, 'Grace Hopper'], [page2, 'Ada Lovelace']]) {
      await p.waitForFunction(() => document.querySelectorAll('.presence li').length === 2, null, { timeout: 10_000 }).catch(() => {
        throw new Error('the presence bar does not show two people');
      });
      await expectVisible(p.locator(`.presence li[aria-label^="${other}"]`), `${other} in the presence bar`);
    }
    await expectVisible(page.locator('.collaboration-carets__label', { hasText: 'Grace Hopper' }), "Grace's caret in Ada's editor");
    const where = await page.locator('.presence li[aria-label^="Grace Hopper"]').getAttribute('aria-label');
    if (!where.includes('Goals')) throw new Error(`Grace's presence does not say where she is: ${where}`);
    await shot('editor-two-people');
    // Grace's tab goes to the background: she shows as away, in the bar and in the API.
    const visibility = (state) => page2.evaluate((state) => {
      Object.defineProperty(document, 'visibilityState', { value: state, configurable: true });
      document.dispatchEvent(new Event('visibilitychange'));
    }, state);
    await visibility('hidden');
    await expectVisible(page.locator('.presence li.away[aria-label="Grace Hopper, away"]'), 'Grace away in the presence bar');
    const presence = await page.evaluate(async (id) => (await fetch(`/api/v1/documents/${id}/presence`)).json(), prdId);
    const grace = presence.find((p) => p.user.name === 'Grace Hopper');
    if (grace?.status !== 'away') throw new Error(`the presence API says Grace is ${grace?.status}`);
    await visibility('visible');
    await page.locator('.presence li.away').waitFor({ state: 'detached', timeout: 10_000 });
  });

  await check('both type at once and the texts converge', async () => {
    await editorOf(page).locator('p', { hasText: 'Cut checkout' }).click();
    await page.keyboard.press('End');
    await editorOf(page2).locator('p', { hasText: 'Cut checkout' }).click();
    await page2.keyboard.press('Home');
    await Promise.all([
      page.keyboard.type(' Ada was here.', { delay: 15 }),
      page2.keyboard.type('Grace too. ', { delay: 15 }),
    ]);
    await Promise.all([savedIn(page), savedIn(page2)]);
    // The text itself, without the collaborators' caret labels drawn into it.
    const text = (p) => p.evaluate(() => {
      const copy = document.querySelector('.prose').cloneNode(true);
      copy.querySelectorAll('.collaboration-carets__caret').forEach((c) => c.remove());
      return copy.textContent;
    });
    const texts = async () => Promise.all([text(page), text(page2)]);
    for (let i = 0; ; i++) {
      const [a, b] = await texts();
      if (a === b && a.includes('Ada was here.') && a.includes('Grace too. ')) break;
      if (i > 50) throw new Error(`the two editors differ:\n${a}\n---\n${b}`);
      await page.waitForTimeout(100);
    }
    await serverHas('Grace too. Cut checkout time in half. Ada was here.');
  });

  await check('typed while offline, kept, and saved on reconnecting', async () => {
    await grace.setOffline(true);
    await page2.locator('.save-state[data-state="offline"]').waitFor({ timeout: 40_000 }).catch(() => {
      throw new Error('the editor does not say it is offline');
    });
    await editorOf(page2).locator('h1').click();
    await page2.keyboard.press('End');
    await page2.keyboard.type(' and offline notes');
    await shot('editor-offline', page2);
    await grace.setOffline(false);
    await savedIn(page2);
    await serverHas('# Goals and offline notes');
    await expectVisible(page.locator('.prose h1', { hasText: 'Goals and offline notes' }), "the offline edit in Ada's editor");
  });

  await check('a reload shows the text at once, from this browser and the server', async () => {
    await page2.reload();
    await expectVisible(page2.locator('.prose h1', { hasText: 'Goals and offline notes' }), 'the text after a reload');
    await savedIn(page2);
  });

  await check('a long document lays out only what is on screen, and what is typed in it lands where the caret is', async () => {
    const slug = new URL(workspace).pathname.split('/')[2];
    const created = await apiCall(page, 'POST', `/api/v1/workspaces/${slug}/documents`, { kind: 'prd', title: 'Long notes' });
    if (created.status !== 201) throw new Error(`creating the document answered ${created.status}`);
    const id = created.body.id;
    let markdown = '';
    for (let s = 0; s < 30; s++) {
      const paragraphs = Array.from({ length: 15 }, (_, p) => `Paragraph ${s * 15 + p + 1} of the long notes.`);
      markdown += `## Part ${s + 1}\n\n${paragraphs.join('\n\n')}\n\n`;
    }
    const put = await apiCall(page, 'PUT', `/api/v1/documents/${id}/content`, { format: 'markdown', content: markdown });
    if (put.status >= 300) throw new Error(`writing the document answered ${put.status}`);
    await page.goto(`${workspace}/d/${id}`);
    await expectVisible(page.locator('.prose.lazy-layout'), 'the long document laid out lazily');
    const paragraph = editorOf(page).locator('p', { hasText: 'Paragraph 200 of the long notes.' });
    await paragraph.scrollIntoViewIfNeeded();
    await paragraph.click();
    await page.keyboard.press('End');
    await page.keyboard.press('Enter');
    await page.keyboard.type('[ ] Measure the current time');
    await expectVisible(page.locator('.prose > .caret-block', { hasText: 'Measure the current time' }), 'the block being typed in kept laid out');
    await page.keyboard.press('Control+End');
    await page.keyboard.press('Enter');
    await page.keyboard.type('Last words, typed at the end.');
    await savedIn(page);
    const wanted = ['Paragraph 200 of the long notes.\n\n- [ ] Measure the current time\n\nParagraph 201', 'Last words, typed at the end.'];
    let got = '';
    for (let i = 0; i < 50 && !wanted.every((w) => got.includes(w)); i++) {
      if (i) await page.waitForTimeout(200);
      got = await serverMarkdown(id);
    }
    const missing = wanted.filter((w) => !got.includes(w));
    if (missing.length) throw new Error(`the server's copy lacks ${JSON.stringify(missing)}: …${got.slice(-600)}`);
    await shot('editor-long', page, editorOf(page).locator('li', { hasText: 'Measure the current time' }));
  });

  const wsSlug = new URL(workspace).pathname.split('/')[2];
  let draftDoc = '';
  /** Waits until the draft on `p` is in `status` and its preview holds `text`. */
  const draftShows = (p, status, text, timeout = 30_000) =>
    p
      .waitForFunction(
        ([status, text]) => {
          const d = document.querySelector(`.draft-panel .draft[data-status="${status}"]`);
          return !!d && (d.querySelector('.draft-preview')?.textContent ?? '').includes(text);
        },
        [status, text],
        { timeout },
      )
      .catch(async () => {
        const got = await p.locator('.draft-panel').textContent().catch(() => 'no draft panel');
        throw new Error(`the draft is not ${status} with ${JSON.stringify(text)}; the panel reads: ${got}`);
      });

  await check("a workspace's admin sets up an AI provider and the workspace drafts with it", async () => {
    const put = await apiCall(page, 'PUT', '/api/v1/ai/providers/writer', { kind: 'openai', base_url: fake.url, text_model: 'fake-writer' });
    if (put.status !== 200) throw new Error(`adding the provider answered ${put.status}: ${JSON.stringify(put.body)}`);
    const chose = await apiCall(page, 'PUT', `/api/v1/workspaces/${wsSlug}/ai`, { text: 'writer' });
    if (chose.status !== 200) throw new Error(`choosing it answered ${chose.status}: ${JSON.stringify(chose.body)}`);
  });

  await check('a new PRD opens on the drafting panel, and the draft streams into its preview', async () => {
    await newDraft('Offline notes');
    draftDoc = new URL(page.url()).pathname.split('/').pop();
    await expectVisible(page.getByRole('heading', { name: 'Draft with AI' }), 'the drafting panel');
    if (!(await page.getByLabel('Drafted by').inputValue()).startsWith('writer')) throw new Error('the workspace\'s provider is not the one that will draft');
    // Grace has the document open while Ada drafts.
    await page2.goto(`${workspace}/d/${draftDoc}`);
    await savedIn(page2);
    await page.getByLabel('What should this PRD cover?').fill('Field teams lose notes when they work offline. Notes must sync when the connection returns.');
    await shot('draft-prompt');
    await page.getByRole('button', { name: 'Generate draft' }).click();
    // Text in the preview while the draft is still being written: it streams.
    await draftShows(page, 'processing', 'Field teams lose their notes');
    await shot('draft-streaming');
    await draftShows(page, 'completed', 'Which devices must be supported at launch');
    await expectVisible(page.getByTestId('draft-provider').filter({ hasText: 'fake-writer' }), 'the model that wrote it');
    await shot('draft-ready');
  });

  await check('editing the request regenerates the draft, and a reload mid-generation finds it', async () => {
    fake.hold();
    await page.getByRole('button', { name: 'Edit the request and regenerate' }).click();
    const request = page.getByLabel('What should this PRD cover?');
    if (!(await request.inputValue()).startsWith('Field teams lose notes')) throw new Error('the request is not kept for editing');
    await request.fill('Field teams lose notes offline. Dispatchers need a daily summary of what was synced.');
    await page.getByRole('button', { name: 'Regenerate' }).click();
    await draftShows(page, 'processing', 'a daily summary for dispatchers');
    await page.reload();
    await draftShows(page, 'processing', 'a daily summary for dispatchers');
    fake.open();
    await draftShows(page, 'completed', 'Which devices must be supported at launch');
    if (fake.calls() !== 2) throw new Error(`the provider was called ${fake.calls()} times, not twice`);
  });

  await check('approving puts the draft into the document, live for a teammate, with a version', async () => {
    await page.getByRole('button', { name: 'Approve into the document' }).click();
    await page.getByRole('heading', { name: 'Draft with AI' }).waitFor({ state: 'detached', timeout: 15_000 }).catch(() => {
      throw new Error('the drafting panel stays open after approving');
    });
    await expectVisible(page.locator('.editor-page .prose h2', { hasText: 'Success metrics' }), "the draft in Ada's editor");
    await expectVisible(page2.locator('.editor-page .prose h2', { hasText: 'Success metrics' }), "the draft in Grace's editor");
    await expectVisible(page2.locator('.editor-page .prose', { hasText: 'a daily summary for dispatchers' }), 'the regenerated text');
    await shot('draft-approved-teammate', page2);
    const versions = await apiCall(page, 'GET', `/api/v1/documents/${draftDoc}/versions`);
    const messages = (versions.body?.items ?? []).map((v) => v.message);
    if (!messages.includes('Approved the AI draft by fake-writer')) throw new Error(`no version of the approval: ${JSON.stringify(messages)}`);
  });

  await check('the history lists versions, shows a change in the document\'s formatting, names one and restores one', async () => {
    await page.locator('.editor-page .prose p', { hasText: 'Lost-note reports drop to zero' }).click();
    await page.keyboard.press('End');
    await page.keyboard.type(' Support tickets halve.');
    await savedIn(page);
    const versionsOf = async () => (await apiCall(page, 'GET', `/api/v1/documents/${draftDoc}/versions`)).body?.items ?? [];
    for (let i = 0; (await versionsOf()).length < 2; i++) {
      if (i > 300) throw new Error(`no second version: ${JSON.stringify(await versionsOf())}`);
      await page.waitForTimeout(100);
    }
    await page.getByRole('link', { name: 'History' }).click();
    await page.waitForURL(/\/history/);
    await expectVisible(page.getByRole('heading', { name: 'History', exact: true }), 'the history heading');
    const items = page.locator('.versions .version-item');
    await page.waitForFunction(() => document.querySelectorAll('.versions .version-item').length === 2, null, { timeout: 10_000 }).catch(async () => {
      throw new Error(`the history lists ${await items.count()} versions, not 2`);
    });
    await expectVisible(page.locator('.rendered-diff .diff-changed ins', { hasText: 'Support tickets halve.' }), 'the added words marked');
    await expectVisible(page.locator('.rendered-diff h2', { hasText: 'Success metrics' }), 'the unchanged headings as headings');
    await shot('history-diff');
    await page.getByLabel(/Name of version/).fill('Reviewed');
    await page.getByRole('button', { name: 'Save name' }).click();
    await expectVisible(page.locator('.versions .version-name', { hasText: 'Reviewed' }), 'the name in the list');
    await items.last().click();
    await expectVisible(page.getByRole('heading', { name: /^Version 1\.0\.0/ }), 'the first version');
    await page.getByRole('button', { name: 'Restore this version' }).click();
    await page.getByRole('group', { name: 'Confirm restoring' }).getByRole('button', { name: 'Restore' }).click();
    await expectVisible(page.getByRole('status').filter({ hasText: 'Restored' }), 'the restore confirmed');
    await expectVisible(page.locator('.versions .version-item', { hasText: 'Restored version 1.0.0' }), 'the restore as a new version');
    const md = (await apiCall(page, 'GET', `/api/v1/documents/${draftDoc}/versions`)).body.items.length;
    if (md !== 3) throw new Error(`${md} versions after restoring, not 3`);
    await page2.locator('.editor-page .prose', { hasText: 'Support tickets halve.' }).waitFor({ state: 'detached', timeout: 10_000 }).catch(async () => {
      const still = await page2.locator('.editor-page .prose').textContent();
      if (still.includes('Support tickets halve.')) throw new Error("the restored text did not reach Grace's editor");
    });
    await shot('history-restored');
  });

  await check('a section rewritten by AI is suggested beside its text and accepted into the document', async () => {
    await page.goto(`${workspace}/d/${draftDoc}`);
    await savedIn(page);
    await page.getByRole('button', { name: 'Rewrite “Success metrics” with AI' }).click();
    const card = page.getByRole('region', { name: 'Rewrite “Success metrics” with AI' });
    await expectVisible(card, 'the rewrite card in the document');
    await card.getByRole('button', { name: 'Make it measurable' }).click();
    await card.getByRole('button', { name: 'Suggest', exact: true }).click();
    await expectVisible(card.getByTestId('suggestion').filter({ hasText: 'from 12 a month to 0' }), 'the suggestion');
    await card.getByRole('button', { name: 'Accept' }).waitFor({ state: 'visible' });
    await page.waitForFunction(() => !document.querySelector('.rewrite-card button.primary[disabled]'), null, { timeout: 15_000 });
    // The card sits in the document, after the section it rewrites and before the next.
    const order = await page.evaluate(() => {
      const all = [...document.querySelectorAll('.editor-page .prose h2, .editor-page .rewrite-card')];
      return all.map((e) => (e.classList.contains('rewrite-card') ? 'card' : e.textContent));
    });
    const at = order.indexOf('card');
    if (order[at - 1] !== 'Success metrics' || order[at + 1] !== 'Risks') throw new Error(`the card is not after its section: ${order}`);
    await shot('rewrite-suggestion');
    await card.getByRole('button', { name: 'Accept' }).click();
    await savedIn(page);
    await card.waitFor({ state: 'detached' });
    await expectVisible(page2.locator('.editor-page .prose li', { hasText: 'from 12 a month to 0' }), "the rewritten section in Grace's editor");
    // The outline says who last changed each section.
    await expectVisible(
      page.locator('.outline li', { hasText: 'Success metrics' }).locator('.outline-author', { hasText: 'Ada Lovelace, just now' }),
      'who last changed the section, in the outline',
    );
    for (let i = 0; ; i++) {
      const text = await serverMarkdown(draftDoc);
      if (text.includes('from 12 a month to 0') && !text.includes('Lost-note reports drop to zero')) break;
      if (i > 50) throw new Error(`the server's copy is not the rewritten section: ${text}`);
      await page.waitForTimeout(200);
    }
  });
  await grace.close();

  await page.goto(workspace);
  await check('documents of each kind are listed, searched and filtered', async () => {
    for (const [title, kind] of [['Living room moodboard', 'Moodboard'], ['Sensor board', 'Board build']]) {
      await page.getByRole('button', { name: 'New document' }).click();
      await newDocument().getByLabel('Title').fill(title);
      await newDocument().getByLabel('Kind').selectOption({ label: kind });
      await newDocument().getByRole('button', { name: 'Create', exact: true }).click();
      await page.waitForURL(/\/d\/doc_/);
      await page.goto(workspace);
    }
    await expectRows(['Checkout redesign', 'Living room moodboard', 'Long notes', 'Offline notes', 'Sensor board']);
    await shot('documents');
    await page.getByPlaceholder('Search by title').fill('check');
    await expectRows(['Checkout redesign']);
    await page.getByPlaceholder('Search by title').fill('');
    await page.getByLabel('Kind').selectOption({ label: 'Moodboard' });
    await expectRows(['Living room moodboard']);
    await page.getByLabel('Kind').selectOption({ label: 'All kinds' });
    await page.getByLabel('Sort').selectOption({ label: 'Title A–Z' });
    await expectRows(['Checkout redesign', 'Living room moodboard', 'Long notes', 'Offline notes', 'Sensor board'], { ordered: true });
  });

  await check('a deleted document goes to the trash and comes back', async () => {
    await page.getByRole('button', { name: 'Delete Sensor board' }).click();
    await expectRows(['Checkout redesign', 'Living room moodboard', 'Long notes', 'Offline notes']);
    await page.getByRole('tab', { name: 'Trash' }).click();
    await expectRows(['Sensor board']);
    await shot('trash');
    await page.getByRole('button', { name: 'Restore Sensor board' }).click();
    await expectVisible(page.getByText('The trash is empty'), 'the empty trash');
    await page.getByRole('tab', { name: 'Documents' }).click();
    await expectRows(['Checkout redesign', 'Living room moodboard', 'Long notes', 'Offline notes', 'Sensor board']);
  });

  await check('pages of 25 go forward and back', async () => {
    // Filling a second page through the API, with the page's own session.
    for (let i = 0; i < 25; i++) {
      const r = await apiCall(page, 'POST', `/api/v1/workspaces/${wsSlug}/documents`, { kind: 'prd', title: `Note ${String(i).padStart(2, '0')}` });
      if (r.status !== 201) throw new Error(`creating a document answered ${r.status}`);
    }
    await page.reload();
    await page.waitForFunction(() => document.querySelectorAll('table.list tbody tr').length === 25);
    await page.getByRole('button', { name: 'Next' }).click();
    await page.waitForFunction(() => document.querySelectorAll('table.list tbody tr').length === 5);
    await expectVisible(page.getByText('Page 2'), 'the page number');
    await page.getByRole('button', { name: 'Previous' }).click();
    await page.waitForFunction(() => document.querySelectorAll('table.list tbody tr').length === 25);
    if (!(await page.getByRole('button', { name: 'Previous' }).isDisabled())) throw new Error('Previous is enabled on page 1');
  });

  await check('a workspace that does not exist says so', async () => {
    await page.goto(base + '/w/no-such-workspace');
    await expectVisible(page.getByRole('heading', { name: /Not found|You do not have access/ }), 'a not-found message');
    await shot('not-found');
  });

  await check('a new workspace appears in the sidebar and opens', async () => {
    await page.goto(workspace);
    await page.getByRole('button', { name: 'New workspace' }).click();
    await page.getByLabel('Workspace name').fill('Field Research');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await page.waitForURL('**/w/field-research');
    await expectVisible(page.getByRole('link', { name: 'Field Research' }), 'the workspace in the sidebar');
    await expectVisible(page.getByRole('heading', { name: 'Field Research' }), 'the workspace heading');
  });

  await check('the layout holds on a tablet', async () => {
    await page.goto(workspace);
    await page.setViewportSize({ width: 768, height: 1024 });
    await expectVisible(page.getByRole('link', { name: 'Note 24' }), 'the documents');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    if (overflow > 0) throw new Error(`the page scrolls sideways by ${overflow}px on a tablet`);
    await shot('documents-tablet');
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  await check('a draft the quality gate refuses says why and offers the built-in outline', async () => {
    await newDraft('Field kit');
    await page.getByLabel('What should this PRD cover?').fill('Technicians need a field kit app that keeps notes offline and syncs them later.');
    await page.getByRole('button', { name: 'Generate draft' }).click();
    const failed = page.locator('.draft[data-status="failed"] .draft-failed');
    await failed.waitFor({ timeout: 60_000 }).catch(async () => {
      throw new Error(`the draft did not fail: ${await page.locator('.draft-panel').textContent()}`);
    });
    const said = await failed.textContent();
    if (!said.includes('repeats itself') || !said.includes('from writer')) throw new Error(`the failure does not say why: ${said}`);
    await shot('draft-failed');
    await page.getByRole('button', { name: 'Use the built-in outline instead' }).click();
    await draftShows(page, 'completed', 'Open question');
    await expectVisible(page.getByTestId('draft-provider').filter({ hasText: 'Built-in outline' }), 'the built-in outline named as such');
  });

  await check('a small local model is named as such before drafting, and the built-in outline offered', async () => {
    await newDraft('Route planner');
    const drafter = page.getByLabel('Drafted by');
    // The workspace's choice arrives with its own request, after the list of providers.
    let chosen = '';
    for (let i = 0; i < 50 && !chosen.startsWith('writer'); i++) {
      if (i) await page.waitForTimeout(100);
      chosen = await drafter.inputValue();
    }
    if (!chosen.startsWith('writer')) throw new Error(`the workspace's provider is not chosen: ${chosen}`);
    if ((await page.getByTestId('draft-weak').count()) !== 0) throw new Error('a provider Quire has not measured is called weak');
    await drafter.selectOption('local');
    const note = page.getByTestId('draft-weak');
    await expectVisible(note.filter({ hasText: 'SmolLM2-135M-Instruct' }), 'the small model named');
    const said = await note.textContent();
    if (!/of its drafts passed the quality gate/.test(said)) throw new Error(`the note does not say how its drafts fare: ${said}`);
    await page.getByLabel('What should this PRD cover?').fill('Cyclists need routes that prefer bike lanes and quiet streets.');
    await shot('draft-weak-model');
    await note.getByRole('button', { name: 'Use the built-in outline' }).click();
    if ((await drafter.inputValue()) !== 'quire-builtin') throw new Error(`the built-in outline is not chosen: ${await drafter.inputValue()}`);
    await page.getByRole('button', { name: 'Generate draft' }).click();
    await draftShows(page, 'completed', 'prefer bike lanes');
  });

  await check('a viewer reads a PRD live but cannot change it', async () => {
    const inv = await apiCall(page, 'POST', `/api/v1/workspaces/${wsSlug}/invitations`, { role: 'viewer' });
    if (inv.status !== 201) throw new Error(`the invitation answered ${inv.status}`);
    const lin = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const viewer = await lin.newPage();
    await viewer.goto(`${base}/join?token=${inv.body.token}`);
    await viewer.getByRole('link', { name: 'Create an account to join' }).click();
    await viewer.getByLabel('Name').fill('Lin Viewer');
    await viewer.getByLabel('Email').fill('lin@example.com');
    await viewer.getByLabel('Password').fill('correct horse battery');
    await viewer.getByRole('button', { name: 'Create account' }).click();
    await viewer.waitForURL(new RegExp(new URL(workspace).pathname + '$'));
    await viewer.goto(`${workspace}/d/${draftDoc}?draft`);
    await expectVisible(viewer.getByRole('note').filter({ hasText: 'View only' }), 'the view-only note');
    await expectVisible(viewer.locator('.editor-page .prose h2', { hasText: 'Success metrics' }), 'the text');
    const editable = await viewer.locator('.editor-page .prose').getAttribute('contenteditable');
    if (editable !== 'false') throw new Error(`the viewer's editor is editable (${editable})`);
    for (const [what, locator] of [
      ['the toolbar', viewer.getByRole('button', { name: 'Bold' })],
      ['the drafting panel', viewer.getByRole('heading', { name: 'Draft with AI' })],
      ['the rewrite buttons', viewer.getByRole('button', { name: /Rewrite “/ })],
    ]) {
      if (await locator.count()) throw new Error(`a viewer is shown ${what}`);
    }
    if (!(await viewer.locator('#document-title').getAttribute('readonly') !== null)) throw new Error('the title can be renamed');
    await shot('viewer', viewer);
    await lin.close();
  });

  await check('the account lists where the person is signed in, and signs another browser out', async () => {
    const elsewhere = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const other = await elsewhere.newPage();
    await other.goto(base + '/signin');
    await other.getByLabel('Email').fill('ada@example.com');
    await other.getByLabel('Password').fill('correct horse battery');
    await other.getByRole('button', { name: 'Sign in' }).click();
    await other.waitForURL(/\/w\//);
    await page.getByTitle('Your account and sessions').click();
    await page.waitForURL('**/account');
    const rows = page.locator('.sessions li');
    await page.waitForFunction(() => document.querySelectorAll('.sessions li').length === 2, null, { timeout: 10_000 }).catch(async () => {
      throw new Error(`the account lists ${await rows.count()} sessions, not 2`);
    });
    await expectVisible(rows.filter({ hasText: 'This browser' }), 'this browser marked');
    await shot('account');
    await rows.filter({ hasNotText: 'This browser' }).getByRole('button', { name: 'Sign out' }).click();
    await page.waitForFunction(() => document.querySelectorAll('.sessions li').length === 1, null, { timeout: 10_000 });
    await other.reload();
    await other.waitForURL(/\/signin/, { timeout: 15_000 }).catch(() => {
      throw new Error('the signed-out browser still opens the app');
    });
    await elsewhere.close();
  });

  await check('signing out ends the session; signing in returns to where the person was', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/signin/);
    const target = new URL(workspace).pathname;
    await page.goto(base + target);
    await page.waitForURL(`**/signin?next=${encodeURIComponent(target)}`);
    await page.getByLabel('Email').fill('ada@example.com');
    await page.getByLabel('Password').fill('correct horse battery');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`**${target}`);
    await expectVisible(page.getByRole('link', { name: 'Note 24' }), 'the documents after signing in');
  });

  if (problems.length) throw new Error(problems.join('\n'));
  console.log('all ok');
} catch (e) {
  await shot('failure').catch(() => {});
  console.error(`FAILED: ${run.step}: ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
  await fake.close();
}
