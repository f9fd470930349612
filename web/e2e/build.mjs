// A board image built from the browser against a `quire serve --armbian-dir` pointed at the
// fake Armbian checkout: node e2e/build.mjs BASE_URL SCREENSHOT_DIR
// Ada fills a configuration (checked by the server alone: the checkout's own schema), builds
// it, follows the log live with its stages, and downloads a verified image.
import { Buffer } from 'node:buffer';
import { readFileSync } from 'node:fs';
import { apiCall, eventually, expectVisible, harness, launch, signUp } from './lib.mjs';

const [base, shots = 'screenshots'] = process.argv.slice(2);
if (!base) {
  console.error('usage: node e2e/build.mjs BASE_URL [SCREENSHOT_DIR]');
  process.exit(2);
}
const run = harness(shots);
const { check, shot } = run;
const browser = await launch();
// The refused save answers 409 on purpose.
const ada = run.watch(await (await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true })).newPage(), '', /\b(401|404|409)\b/);
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

  const putFile = (path, text, ifMatch) =>
    ada.evaluate(
      async ([docId, path, text, ifMatch]) => {
        const csrf = document.cookie.split('; ').find((c) => c.startsWith('quire_csrf='))?.split('=')[1] ?? '';
        const r = await fetch(`/api/v1/documents/${docId}/files/${encodeURIComponent(path)}`, {
          method: 'PUT',
          headers: { 'x-csrf-token': csrf, 'if-match': `"${ifMatch}"` },
          body: text,
        });
        return { status: r.status, body: await r.json() };
      },
      [docId, path, text, ifMatch],
    );
  const fileText = (path) =>
    ada.evaluate(async ([docId, path]) => (await fetch(`/api/v1/documents/${docId}/files/${encodeURIComponent(path)}`)).text(), [docId, path]);
  const editor = () => ada.locator('.files-detail .cm-content');

  await check('files go with the configuration: a script from Armbian’s starting point, edited, and an overlay file uploaded', async () => {
    await ada.getByRole('tab', { name: 'Files' }).click();
    await expectVisible(ada.getByText('No files yet.'), 'the empty file list');
    await ada.getByRole('button', { name: 'New file' }).click();
    await ada.getByLabel('Path inside userpatches/').fill('customize-image.sh');
    await ada.getByRole('button', { name: 'Create', exact: true }).click();
    await expectVisible(editor().getByText('Armbian runs this inside the image'), 'the starting point in the editor');
    await editor().click();
    await ada.keyboard.press('Control+End');
    await ada.keyboard.type('echo "Customized by Ada for $BOARD"\n');
    await expectVisible(ada.getByText('Unsaved changes'), 'the unsaved state');
    await ada.keyboard.press('Control+s');
    await eventually('the script saved', async () => (await fileText('customize-image.sh')).includes('Customized by Ada for $BOARD'));
    if (!(await ada.getByLabel('Executable').isChecked())) throw new Error('a new .sh is not executable');
    // A folder, then an upload into it.
    await ada.getByRole('button', { name: 'New file' }).click();
    await ada.getByLabel('Path inside userpatches/').fill('overlay/etc/issue');
    await ada.getByRole('button', { name: 'Create', exact: true }).click();
    await ada.getByRole('button', { name: 'overlay/', exact: true }).click();
    await expectVisible(ada.locator('.files-target code', { hasText: 'userpatches/overlay/' }), 'the upload folder');
    await ada.getByTestId('upload').setInputFiles({ name: 'motd', mimeType: 'text/plain', buffer: Buffer.from('Property of the lab\n') });
    await expectVisible(ada.locator('.files-file', { hasText: 'motd' }), 'the uploaded file in the tree');
    await expectVisible(ada.locator('.file-head h3', { hasText: 'overlay/motd' }), 'the uploaded file opened');
    await shot('files', ada);
  });

  await check('a change saved elsewhere meanwhile is shown, and never overwritten unseen', async () => {
    await ada.locator('.files-file', { hasText: 'customize-image.sh' }).click();
    await expectVisible(editor().getByText('Customized by Ada'), 'the script');
    await editor().click();
    await ada.keyboard.press('Control+End');
    await ada.keyboard.type('echo "second line by Ada"');
    const listed = await apiCall(ada, 'GET', `/api/v1/documents/${docId}/files`);
    const sha = listed.body.items.find((f) => f.path === 'customize-image.sh').sha256;
    const theirs = await putFile('customize-image.sh', '#!/bin/bash\necho "Customized by Grace"\n', sha);
    if (theirs.status !== 200) throw new Error(`the other save answered ${theirs.status}`);
    await expectVisible(ada.getByText('saved a newer version while you were editing'), 'the news of the other save');
    await ada.getByRole('button', { name: 'Save', exact: true }).click();
    await expectVisible(ada.getByRole('alert').getByText('changed customize-image.sh since you opened it'), 'the refused save');
    await shot('files-conflict', ada);
    if (!(await fileText('customize-image.sh')).includes('Grace')) throw new Error('the other save was overwritten');
    await ada.getByRole('button', { name: 'Save mine anyway' }).click();
    await eventually('mine saved over theirs', async () => (await fileText('customize-image.sh')).includes('second line by Ada'));
    await ada.getByRole('button', { name: 'Versions' }).click();
    await eventually('the script’s versions', async () => (await ada.locator('.file-versions li').count()) >= 2, 20_000);
  });

  await check('Build queues it and the build is followed live, stages as they begin, to its verified image', async () => {
    // Slower stages and more lines, so the live view has something to follow.
    const r = await apiCall(ada, 'PATCH', `/api/v1/documents/${docId}/content`, {
      QUIRE_FAKE_DELAY: '0.4',
      QUIRE_FAKE_LINES: '200',
      COMPRESS_OUTPUTIMAGE: 'sha,img,zst',
    });
    if (r.status !== 204) throw new Error(`the patch answered ${r.status}`);
    await ada.getByRole('tab', { name: 'Check' }).click();
    await expectVisible(ada.getByTestId('command').getByText('QUIRE_FAKE_DELAY=0.4'), 'the settings');
    await ada.getByRole('button', { name: 'Build', exact: true }).click();
    await expectVisible(ada.getByRole('tab', { name: 'Build log', selected: true }), 'the build panel');
    const log = ada.getByRole('log', { name: 'Build log' });
    await expectVisible(log.getByText('Compiling kernel'), 'the log as it is printed');
    await expectVisible(ada.locator('.build-status', { hasText: 'Building' }), 'the build running');
    await expectVisible(ada.locator('.build-stages li.current'), 'the stage under way, while it runs');
    await shot('build-running', ada);
    await expectVisible(ada.locator('.build .build-status', { hasText: 'Built' }), 'the build done', 30_000);
    await expectVisible(log.getByText('Done building image'), 'the last line');
    await expectVisible(log.getByText('Customized by Ada for quire-sbc'), "the configuration's script ran in the build");
    await expectVisible(ada.getByRole('navigation', { name: 'Builds' }).getByText('Built'), 'the history says it too');
    const green = await log.locator('span[style*="color"]').count();
    if (green === 0) throw new Error('the log lost its colours');
    const stages = await ada.locator('.build-stages li').count();
    if (stages < 8) throw new Error(`${stages} stages are listed`);
    await shot('build-done', ada);
    await ada.getByRole('tab', { name: 'Artifacts' }).click();
    const table = ada.getByRole('list', { name: 'Artifacts' });
    await expectVisible(table.getByText('✓ checked'), 'the image checked against its .sha');
    const rows = await table.locator('li').count();
    if (rows !== 5) throw new Error(`${rows} artifacts are listed`);
    await shot('build-artifacts', ada);
  });

  await check('an artifact downloads whole', async () => {
    const row = ada.getByRole('list', { name: 'Artifacts' }).locator('li', { hasText: '.img.zst.sha' });
    const [file] = await Promise.all([ada.waitForEvent('download'), row.getByRole('link', { name: 'Download' }).click()]);
    const text = readFileSync(await file.path(), 'utf8');
    if (!/^[0-9a-f]{64} Armbian-unofficial_.*\.img\.zst\n$/.test(text)) throw new Error(`the .sha reads ${JSON.stringify(text)}`);
  });

  await check('the panels stay as Ada leaves them, on every visit, until she resets them', async () => {
    await ada.getByRole('button', { name: 'Maximize tabset' }).first().click();
    await expectVisible(ada.getByRole('button', { name: 'Restore tabset' }), 'the maximized panel');
    await ada.waitForTimeout(1500);
    await ada.reload();
    await expectVisible(ada.getByRole('button', { name: 'Restore tabset' }), 'the maximized panel after a reload');
    await ada.getByRole('button', { name: 'Reset panels' }).click();
    await eventually('the panels back', async () => (await ada.getByRole('button', { name: 'Restore tabset' }).count()) === 0);
    await ada.waitForTimeout(1500);
    await ada.reload();
    await expectVisible(ada.getByRole('tab', { name: 'Settings' }), 'the panels');
    if ((await ada.getByRole('button', { name: 'Restore tabset' }).count()) !== 0) throw new Error('the reset was not kept');
  });

  await check('the GraphQL explorer answers queries and subscriptions as Ada', async () => {
    const builds = await apiCall(ada, 'GET', `/api/v1/documents/${docId}/builds`);
    const buildId = builds.body.items[0].id;
    await ada.getByRole('link', { name: 'GraphQL explorer' }).click();
    await ada.waitForURL(/\/graphql$/);
    const execute = ada.getByRole('button', { name: /Execute query/ });
    await expectVisible(execute, 'GraphiQL');
    await execute.click();
    const result = ada.locator('.graphiql-response');
    await eventually('the query’s answer', async () => (await result.innerText()).includes('SBC image') && (await result.innerText()).includes('COMPLETED'), 15_000);
    await shot('graphiql', ada);
    // A subscription, over the socket: the build's progress to its end.
    await ada.locator('.graphiql-query-editor .CodeMirror').first().click();
    await ada.keyboard.press('Control+a');
    await ada.keyboard.press('Delete');
    await ada.keyboard.insertText(`subscription {\n  buildProgress(build: "${buildId}") { status progress { percent } }\n}`);
    // The editor reads the operation a moment after typing stops.
    await ada.waitForTimeout(600);
    await execute.click();
    await eventually('the subscription’s answer', async () => {
      const text = await result.innerText();
      return text.includes('buildProgress') && text.includes('COMPLETED');
    }, 15_000);
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
