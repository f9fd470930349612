// A board configuration edited by two people at once in real browsers against a running
// `quire serve`: node e2e/config.mjs BASE_URL SCREENSHOT_DIR
// Ada makes a configuration and invites Grace; they pick the board and the release at the
// same moment and both keep theirs, see who is on which setting, and the form refuses what
// Armbian cannot build — in the browser (AJV) and on the server — with the same words. The
// expert KEY=value view changes the same configuration.
import { apiCall, eventually, expectVisible, harness, launch, signUp } from './lib.mjs';

const [base, shots = 'screenshots'] = process.argv.slice(2);
if (!base) {
  console.error('usage: node e2e/config.mjs BASE_URL [SCREENSHOT_DIR]');
  process.exit(2);
}
const run = harness(shots);
const { check, shot } = run;
const browser = await launch();
const viewport = { width: 1280, height: 900 };
const ada = run.watch(await (await browser.newContext({ viewport })).newPage());
const grace = run.watch(await (await browser.newContext({ viewport })).newPage(), ' (Grace)');

const field = (p, key) => p.locator(`.config-field[data-field="${key}"]`);
const select = (p, key) => field(p, key).locator('select');
/** The label of the option a field's select shows. */
const shown = (p, key) => select(p, key).evaluate((s) => s.options[s.selectedIndex]?.text ?? '');
const choose = (p, key, label) => select(p, key).selectOption({ label });
const radio = (p, key, value) => field(p, key).getByLabel(value, { exact: true }).check();
const serverConfig = (id) => apiCall(ada, 'GET', `/api/v1/documents/${id}/content`).then((r) => r.body);
const saved = (p) => p.locator('.save-state[data-state="saved"]').waitFor({ timeout: 15_000 });
const errorOf = (p, key) => field(p, key).locator('.error-detail').innerText().catch(() => '');

try {
  let url = '';
  let docId = '';
  await check('a board configuration is made from the documents list and opens on its form', async () => {
    await signUp(ada, { name: 'Ada Lovelace', email: 'ada@example.com', at: base + '/signin' });
    await ada.waitForURL(/\/w\/[^/]+$/);
    await ada.getByRole('button', { name: 'New document' }).click();
    const form = ada.getByRole('form', { name: 'New document' });
    await form.getByLabel('Title').fill('Rock 5B image');
    await form.getByLabel('Kind').selectOption({ label: 'Board build' });
    await form.getByRole('button', { name: 'Create', exact: true }).click();
    await ada.waitForURL(/\/d\/doc_[^/?]+$/);
    url = ada.url();
    docId = new URL(url).pathname.split('/').pop();
    await expectVisible(select(ada, 'BOARD'), 'the board field');
    for (const group of ['Board and release', 'Image', 'Storage and outputs', 'System']) {
      await expectVisible(ada.locator('legend', { hasText: group }), `the group ${group}`);
    }
    await saved(ada);
    await expectVisible(ada.getByTestId('server-check').getByText('3 to fix before building'), "the server's check of an empty configuration");
    await shot('config-empty', ada);
  });

  await check('a teammate opens it, and two settings changed at the same moment both stay', async () => {
    const slug = new URL(url).pathname.split('/')[2];
    const inv = await apiCall(ada, 'POST', `/api/v1/workspaces/${slug}/invitations`, { role: 'editor' });
    if (inv.status !== 201) throw new Error(`the invitation answered ${inv.status}`);
    await signUp(grace, { name: 'Grace Hopper', email: 'grace@example.com', at: `${base}/join?token=${inv.body.token}` });
    await grace.waitForURL(/\/w\/[^/]+$/);
    await grace.goto(url);
    await expectVisible(select(grace, 'BOARD'), "the form in Grace's browser");
    await saved(grace);
    await Promise.all([choose(ada, 'BOARD', 'Rock 5B'), choose(grace, 'RELEASE', 'Ubuntu noble 24.04')]);
    for (const p of [ada, grace]) {
      await eventually('both choices in both browsers', async () =>
        (await shown(p, 'BOARD')) === 'Rock 5B' && (await shown(p, 'RELEASE')).startsWith('Ubuntu noble'),
      );
    }
    await saved(ada);
    await saved(grace);
    const config = await serverConfig(docId);
    if (config.BOARD !== 'rock-5b' || config.RELEASE !== 'noble') throw new Error(`the server has ${JSON.stringify(config)}`);
    await expectVisible(ada.locator('.config-board h3', { hasText: 'Rock 5B' }), "the board's card");
  });

  await check('each sees who is on which setting, and who changed it', async () => {
    await select(grace, 'BRANCH').focus();
    await expectVisible(field(ada, 'BRANCH').locator('.config-person[data-person="Grace Hopper"]'), "Grace's mark on the branch");
    await choose(grace, 'BRANCH', 'current');
    await expectVisible(field(ada, 'BRANCH').getByText('changed by Grace'), 'who changed the branch');
    await eventually('the branch in Ada’s form', async () => (await shown(ada, 'BRANCH')) === 'current');
    await expectVisible(ada.getByTestId('server-check').getByText('Ready to build'), 'the server says it builds');
    await shot('config-two-people', ada);
    await grace.locator('h1, .title-input').first().click();
    await eventually("Grace's mark goes when she leaves the field", async () => (await field(ada, 'BRANCH').locator('.config-person').count()) === 0);
  });

  await check('a branch the board does not build is refused in the browser and by the server, in the same words', async () => {
    // Only the board's branches are offered; one written by someone else's tool still shows its error.
    const offered = await select(ada, 'BRANCH').evaluate((s) => [...s.options].map((o) => o.text).filter(Boolean));
    if (offered.includes('legacy') || !offered.includes('vendor')) throw new Error(`the branches offered are ${offered}`);
    const r = await apiCall(ada, 'PATCH', `/api/v1/documents/${docId}/content`, { BRANCH: 'legacy' });
    if (r.status !== 204) throw new Error(`the patch answered ${r.status}`);
    const words = "rock-5b does not build the 'legacy' kernel branch; it builds current, edge or vendor";
    for (const p of [ada, grace]) await eventually('the branch error', async () => (await errorOf(p, 'BRANCH')).includes(words));
    await expectVisible(ada.getByTestId('server-check').getByText(words), "the server's words");
    await shot('config-refused-branch', ada, field(ada, 'BRANCH'));
    await choose(ada, 'BRANCH', 'edge');
    await eventually('the error goes', async () => (await errorOf(ada, 'BRANCH')) === '');
  });

  await check('a desktop on a minimal image, and a desktop without its environment, are refused by field', async () => {
    await radio(ada, 'BUILD_MINIMAL', 'yes');
    // The form offers no desktop on a minimal image; one written by another tool shows its error.
    await eventually('only no offered', async () => (await field(ada, 'BUILD_DESKTOP').locator('input[type=radio]').count()) === 1);
    const r = await apiCall(ada, 'PATCH', `/api/v1/documents/${docId}/content`, { BUILD_DESKTOP: 'yes' });
    if (r.status !== 204) throw new Error(`the patch answered ${r.status}`);
    const words = 'a minimal image has no desktop';
    for (const p of [ada, grace]) await eventually('the minimal error', async () => (await errorOf(p, 'BUILD_DESKTOP')).includes(words));
    await expectVisible(ada.getByTestId('server-check').locator('li', { hasText: words }), "the server's error");
    await radio(ada, 'BUILD_MINIMAL', 'no');
    await eventually('the environment is asked for', async () =>
      (await errorOf(ada, 'DESKTOP_ENVIRONMENT')).includes('a desktop image names its desktop environment'),
    );
    await expectVisible(ada.getByTestId('server-check').getByText('a desktop image names its desktop environment'), "the server's words");
    await shot('config-refused-desktop', ada);
    await choose(ada, 'DESKTOP_ENVIRONMENT', 'gnome');
    await expectVisible(ada.getByTestId('server-check').getByText('Ready to build'), 'ready again');
  });

  await check('a release not built for the board’s architecture is refused', async () => {
    const r = await apiCall(ada, 'PATCH', `/api/v1/documents/${docId}/content`, { BOARD: 'uefi-loong64', BRANCH: 'edge', BUILD_DESKTOP: 'no', DESKTOP_ENVIRONMENT: null });
    if (r.status !== 204) throw new Error(`the patch answered ${r.status}`);
    await eventually('the release error', async () => (await errorOf(ada, 'RELEASE')).includes('is not built for the architecture of uefi-loong64'));
    await expectVisible(ada.getByTestId('server-check').getByText("'noble' is not built for loong64"), "the server's error");
    await choose(ada, 'BOARD', 'Rock 5B');
  });

  await check('the expert view edits the raw KEY=value lines, and the form follows', async () => {
    await grace.getByRole('tab', { name: 'KEY=value' }).click();
    const text = grace.locator('#config-lines');
    await eventually('the lines', async () => (await text.inputValue()).startsWith('BOARD=rock-5b\nBRANCH=edge\nRELEASE=noble'));
    await text.fill(`${await text.inputValue()}\nROOTFS_TYPE=f2fs\nFIXED_IMAGE_SIZE=7000\nCOMPRESS_OUTPUTIMAGE=sha,img,zst\nlower=1`);
    await grace.getByRole('button', { name: 'Apply' }).click();
    await expectVisible(grace.getByRole('alert').getByText('Line'), 'the bad line named');
    await text.fill((await text.inputValue()).replace('\nlower=1', ''));
    await grace.getByRole('button', { name: 'Apply' }).click();
    await eventually('the form follows', async () => (await shown(ada, 'ROOTFS_TYPE')) === 'f2fs');
    const size = await field(ada, 'FIXED_IMAGE_SIZE').locator('input').inputValue();
    if (size !== '7000') throw new Error(`the size shows ${size}`);
    const config = await serverConfig(docId);
    if (config.FIXED_IMAGE_SIZE !== 7000 || config.COMPRESS_OUTPUTIMAGE !== 'sha,img,zst') throw new Error(`the server has ${JSON.stringify(config)}`);
    await expectVisible(grace.getByTestId('command').getByText('FIXED_IMAGE_SIZE=7000'), 'the build command');
    for (const p of [ada, grace]) await expectVisible(p.getByTestId('server-check').getByText('Ready to build'), "the server's check");
    await shot('config-expert', grace);
    await shot('config', ada);
  });

  if (run.problems.length) throw new Error(run.problems.join('\n'));
  console.log('all ok');
} catch (e) {
  await shot('config-failure', ada).catch(() => {});
  await shot('config-failure-grace', grace).catch(() => {});
  console.error(`FAILED: ${run.step}: ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
