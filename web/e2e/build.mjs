// A board image built from the browser against a `quire serve --armbian-dir` pointed at the
// fake Armbian checkout: node e2e/build.mjs BASE_URL SCREENSHOT_DIR
// Ada fills a configuration (checked by the server alone: the checkout's own schema), builds
// it, follows the log live with its stages, and downloads a verified image.
import { readFileSync } from 'node:fs';
import { apiCall, expectVisible, harness, launch, signUp } from './lib.mjs';

const [base, shots = 'screenshots'] = process.argv.slice(2);
if (!base) {
  console.error('usage: node e2e/build.mjs BASE_URL [SCREENSHOT_DIR]');
  process.exit(2);
}
const run = harness(shots);
const { check, shot } = run;
const browser = await launch();
const ada = run.watch(await (await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true })).newPage());
const field = (key) => ada.locator(`.config-field[data-field="${key}"]`);

try {
  let docId = '';
  await check('a configuration of the checkout’s own boards is checked by the server, by field', async () => {
    await signUp(ada, { name: 'Ada Lovelace', email: 'ada@example.com', at: base + '/signin' });
    await ada.waitForURL(/\/w\/[^/]+$/);
    await ada.getByRole('button', { name: 'New document' }).click();
    const form = ada.getByRole('form', { name: 'New document' });
    await form.getByLabel('Title').fill('SBC image');
    await form.getByLabel('Kind').selectOption({ label: 'Board build' });
    await form.getByRole('button', { name: 'Create', exact: true }).click();
    await ada.waitForURL(/\/d\/doc_[^/?]+$/);
    docId = new URL(ada.url()).pathname.split('/').pop();
    await field('BOARD').locator('select').selectOption({ label: 'Quire SBC' });
    await field('RELEASE').locator('select').selectOption({ label: 'Ubuntu noble 24.04' });
    // The server's answer shows by the field while the branch is missing.
    await expectVisible(field('BRANCH').getByText('Kernel branch is required'), "the server's word by the field");
    if (!(await ada.getByRole('button', { name: 'Build', exact: true }).isDisabled())) throw new Error('Build is offered for a configuration with errors');
    await field('BRANCH').locator('select').selectOption({ label: 'edge' });
    await expectVisible(ada.getByTestId('server-check').getByText('Ready to build'), 'ready');
  });

  await check('Build queues it and the build is followed live to its verified image', async () => {
    // Slower stages and more lines, so the live view has something to follow.
    const r = await apiCall(ada, 'PATCH', `/api/v1/documents/${docId}/content`, {
      QUIRE_FAKE_DELAY: '0.4',
      QUIRE_FAKE_LINES: '200',
      COMPRESS_OUTPUTIMAGE: 'sha,img,zst',
    });
    if (r.status !== 204) throw new Error(`the patch answered ${r.status}`);
    await expectVisible(ada.getByTestId('command').getByText('QUIRE_FAKE_DELAY=0.4'), 'the settings');
    await ada.getByRole('button', { name: 'Build', exact: true }).click();
    await expectVisible(ada.getByRole('tab', { name: 'Builds', selected: true }), 'the builds view');
    const log = ada.getByRole('log', { name: 'Build log' });
    await expectVisible(log.getByText('Compiling kernel'), 'the log as it is printed');
    await expectVisible(ada.locator('.build-status', { hasText: 'Building' }), 'the build running');
    await shot('build-running', ada);
    await expectVisible(ada.locator('.build .build-status', { hasText: 'Built' }), 'the build done', 30_000);
    await expectVisible(log.getByText('Done building image'), 'the last line');
    await expectVisible(ada.getByRole('navigation', { name: 'Builds' }).getByText('Built'), 'the history says it too');
    const green = await log.locator('span[style*="color"]').count();
    if (green === 0) throw new Error('the log lost its colours');
    const table = ada.getByRole('table', { name: 'Artifacts' });
    await expectVisible(table.getByText('✓ checked'), 'the image checked against its .sha');
    const rows = await table.locator('tbody tr').count();
    if (rows !== 5) throw new Error(`${rows} artifacts are listed`);
    const stages = await ada.locator('.build-stages li').count();
    if (stages < 8) throw new Error(`${stages} stages are listed`);
    await shot('build-done', ada);
  });

  await check('an artifact downloads whole', async () => {
    const row = ada.getByRole('table', { name: 'Artifacts' }).locator('tbody tr', { hasText: '.img.zst.sha' });
    const [file] = await Promise.all([ada.waitForEvent('download'), row.getByRole('link', { name: 'Download' }).click()]);
    const text = readFileSync(await file.path(), 'utf8');
    if (!/^[0-9a-f]{64} Armbian-unofficial_.*\.img\.zst\n$/.test(text)) throw new Error(`the .sha reads ${JSON.stringify(text)}`);
  });

  if (run.problems.length) throw new Error(run.problems.join('\n'));
  console.log('all ok');
} catch (e) {
  await shot('build-failure', ada).catch(() => {});
  console.error(`FAILED: ${run.step}: ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
