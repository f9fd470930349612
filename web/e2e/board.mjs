// A moodboard used by two people at once in real browsers against a running `quire serve`:
// node e2e/board.mjs BASE_URL SCREENSHOT_DIR
// Ada makes a board and invites Grace; both add, move, caption, align, group and undo, and
// each sees the other's pointer, selection and changes live. Screenshots go to
// SCREENSHOT_DIR for a person to look at.
import { Buffer } from 'node:buffer';
import { readFileSync } from 'node:fs';
import { apiCall, eventually, expectVisible, harness, launch, signUp } from './lib.mjs';

const [base, shots = 'screenshots'] = process.argv.slice(2);
if (!base) {
  console.error('usage: node e2e/board.mjs BASE_URL [SCREENSHOT_DIR]');
  process.exit(2);
}
const run = harness(shots);
const { check, shot } = run;
const browser = await launch();
const viewport = { width: 1280, height: 800 };
const adaContext = await browser.newContext({ viewport, acceptDownloads: true });
// A file that is not an image is refused with 415, as one step checks.
const ada = run.watch(await adaContext.newPage(), '', /\b(401|404|415)\b/);
const graceContext = await browser.newContext({ viewport });
const grace = run.watch(await graceContext.newPage(), ' (Grace)');

/** A PNG of `w` × `h` painted in the browser: a gradient between two colours, and a shape. */
const painting = (p, w, h, from, to) =>
  p.evaluate(
    async ([w, h, from, to]) => {
      const c = document.createElement('canvas');
      c.width = w;
      c.height = h;
      const ctx = c.getContext('2d');
      const g = ctx.createLinearGradient(0, 0, w, h);
      g.addColorStop(0, from);
      g.addColorStop(1, to);
      ctx.fillStyle = g;
      ctx.fillRect(0, 0, w, h);
      ctx.fillStyle = 'rgba(255,255,255,0.6)';
      ctx.beginPath();
      ctx.arc(w * 0.35, h * 0.55, Math.min(w, h) * 0.22, 0, Math.PI * 2);
      ctx.fill();
      const url = c.toDataURL('image/png');
      return url.slice(url.indexOf(',') + 1);
    },
    [w, h, from, to],
  ).then((b64) => Buffer.from(b64, 'base64'));

const items = (p) => p.locator('.board-item');
const item = (p, label) => p.locator('.board-item', { has: p.locator(`text=${label}`) });
/** The board as the server has it. */
const serverBoard = (id) => apiCall(ada, 'GET', `/api/v1/documents/${id}/content`).then((r) => r.body);
/** Drags from the centre of `locator` by (dx, dy) screen pixels, in steps as a hand would. */
async function drag(p, locator, dx, dy, { at } = {}) {
  const box = await locator.boundingBox();
  const x = at ? box.x + at.x : box.x + box.width / 2;
  const y = at ? box.y + at.y : box.y + box.height / 2;
  await p.mouse.move(x, y);
  await p.mouse.down();
  await p.mouse.move(x + dx / 2, y + dy / 2, { steps: 5 });
  await p.mouse.move(x + dx, y + dy, { steps: 5 });
  await p.mouse.up();
}
const saved = (p) => p.locator('.save-state[data-state="saved"]').waitFor({ timeout: 15_000 });

try {
  let boardUrl = '';
  let docId = '';
  await check('a moodboard is made from the documents list and opens on its canvas', async () => {
    await signUp(ada, { name: 'Ada Lovelace', email: 'ada@example.com', at: base + '/signin' });
    await ada.waitForURL(/\/w\/[^/]+$/);
    await ada.getByRole('button', { name: 'New document' }).click();
    const form = ada.getByRole('form', { name: 'New document' });
    await form.getByLabel('Title').fill('Kitchen refresh');
    await form.getByLabel('Kind').selectOption({ label: 'Moodboard' });
    await form.getByRole('button', { name: 'Create', exact: true }).click();
    await ada.waitForURL(/\/d\/doc_[^/?]+$/);
    boardUrl = ada.url();
    docId = new URL(boardUrl).pathname.split('/').pop();
    await expectVisible(ada.getByRole('application', { name: 'Moodboard canvas' }), 'the canvas');
    await expectVisible(ada.getByText('Drop images here'), 'the empty board hint');
    await saved(ada);
    const board = await serverBoard(docId);
    if (JSON.stringify(board) !== '{"brief":{},"items":{}}') throw new Error(`a new board on the server is ${JSON.stringify(board)}`);
    await shot('board-empty', ada);
  });

  await check('a teammate invited to the workspace opens the same board', async () => {
    const slug = new URL(boardUrl).pathname.split('/')[2];
    const inv = await apiCall(ada, 'POST', `/api/v1/workspaces/${slug}/invitations`, { role: 'editor' });
    if (inv.status !== 201) throw new Error(`the invitation answered ${inv.status}`);
    await signUp(grace, { name: 'Grace Hopper', email: 'grace@example.com', at: `${base}/join?token=${inv.body.token}` });
    await grace.waitForURL(/\/w\/[^/]+$/);
    await grace.goto(boardUrl);
    await expectVisible(grace.getByRole('application', { name: 'Moodboard canvas' }), "the canvas in Grace's browser");
    await saved(grace);
    for (const [p, other] of [[ada, 'Grace Hopper'], [grace, 'Ada Lovelace']]) {
      await expectVisible(p.locator(`.presence li[aria-label^="${other}"]`), `${other} in the presence bar`);
    }
  });

  await check('images uploaded by one person appear on both boards, with their thumbnails', async () => {
    const oak = await painting(ada, 1200, 800, '#c8a27a', '#6b4f3a');
    const sage = await painting(ada, 800, 1000, '#b7c4a8', '#4f5d47');
    const chooser = ada.waitForEvent('filechooser');
    await ada.getByRole('toolbar', { name: 'Board tools' }).getByRole('button', { name: 'Image' }).click();
    await (await chooser).setFiles([
      { name: 'oak.png', mimeType: 'image/png', buffer: oak },
      { name: 'sage.png', mimeType: 'image/png', buffer: sage },
    ]);
    for (const p of [ada, grace]) {
      await eventually('two images on the board', async () => (await p.locator('.board-item.type-image img').count()) === 2);
      await eventually('the images are drawn', () =>
        p.locator('.board-item.type-image img').evaluateAll((imgs) => imgs.every((i) => i.complete && i.naturalWidth > 0)),
      );
    }
    const board = await serverBoard(docId);
    const images = Object.values(board.items).filter((i) => i.type === 'image');
    const shapes = images.map((i) => (i.w / i.h).toFixed(2)).sort();
    if (JSON.stringify(shapes) !== JSON.stringify(['0.80', '1.50'])) throw new Error(`the images are placed in the shapes ${shapes}`);
    if (!images.every((i) => /^[0-9a-f]{64}$/.test(i.asset))) throw new Error('an image names no asset');
  });

  await check('what is not an image is refused with the reason, and nothing is added', async () => {
    const chooser = ada.waitForEvent('filechooser');
    await ada.getByRole('toolbar', { name: 'Board tools' }).getByRole('button', { name: 'Image' }).click();
    await (await chooser).setFiles([
      { name: 'logo.svg', mimeType: 'image/svg+xml', buffer: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>') },
      { name: 'notes.png', mimeType: 'image/png', buffer: Buffer.from('these are not the bytes of a picture') },
    ]);
    await expectVisible(ada.getByRole('alert').filter({ hasText: 'logo.svg: SVG images are not accepted' }), 'the SVG refusal');
    await expectVisible(ada.getByRole('alert').filter({ hasText: /notes\.png: .*(PNG, JPEG, WebP|image)/i }), 'the refusal of a file that is not an image');
    await shot('board-upload-refused', ada);
    if ((await items(ada).count()) !== 2) throw new Error('a refused file was added to the board');
    const dismiss = ada.getByRole('button', { name: 'Dismiss' });
    while (await dismiss.count()) await dismiss.first().click();
  });

  await check('a note written by one person is read live by the other', async () => {
    await ada.getByRole('toolbar', { name: 'Board tools' }).getByRole('button', { name: 'Note' }).click();
    const text = ada.getByRole('textbox', { name: 'Note text' });
    await text.waitFor();
    await text.pressSequentially('Warm oak, matte brass, sage walls', { delay: 10 });
    await ada.keyboard.press('Escape');
    await expectVisible(item(grace, 'Warm oak, matte brass'), "the note in Grace's browser");
  });

  await check("each sees the other's pointer and selection", async () => {
    const note = item(grace, 'Warm oak');
    await note.click();
    const box = await note.boundingBox();
    await grace.mouse.move(box.x + box.width + 60, box.y + 20, { steps: 4 });
    await expectVisible(ada.getByLabel("Grace Hopper's pointer"), "Grace's pointer on Ada's board");
    await expectVisible(ada.locator('.remote-selection[data-person="Grace Hopper"]'), "Grace's selection on Ada's board");
    await shot('board-two-people', ada);
  });

  await check('one moves the note while the other captions an image: both changes are kept', async () => {
    const note = item(grace, 'Warm oak');
    const before = await note.boundingBox();
    const image = ada.locator('.board-item.type-image').first();
    await image.dblclick({ position: { x: 24, y: 24 } });
    const caption = ada.getByRole('textbox', { name: 'Caption' });
    await caption.waitFor();
    await Promise.all([drag(grace, note, 160, 90), caption.pressSequentially('Oak fronts', { delay: 20 })]);
    await ada.keyboard.press('Enter');
    await eventually('the move and the caption on the server', async () => {
      const board = await serverBoard(docId);
      const n = Object.values(board.items).find((i) => i.type === 'note');
      const captioned = Object.values(board.items).find((i) => i.caption === 'Oak fronts');
      return !!captioned && n.x !== undefined && (await item(ada, 'Warm oak').boundingBox()).x > before.x + 100;
    });
    await expectVisible(grace.locator('.board-caption', { hasText: 'Oak fronts' }), "the caption on Grace's board");
  });

  await check('a rectangle selects items; align lines them up, and undo takes back only that', async () => {
    const canvas = ada.getByRole('application', { name: 'Moodboard canvas' });
    await ada.keyboard.press('Escape');
    await ada.keyboard.press('Shift+1'); // everything in view
    const cbox = await canvas.boundingBox();
    // From an empty corner across the whole board.
    await ada.mouse.move(cbox.x + 8, cbox.y + cbox.height - 60);
    await ada.mouse.down();
    await ada.mouse.move(cbox.x + cbox.width - 8, cbox.y + 70, { steps: 8 });
    await ada.mouse.up();
    await eventually('three items selected', async () => (await ada.locator('.board-item[aria-selected="true"]').count()) === 3);
    await shot('board-selection', ada);
    const noteBefore = (await serverBoard(docId)).items;
    await ada.getByRole('button', { name: 'Align ▾' }).click();
    await ada.getByRole('button', { name: 'Align left' }).click();
    await eventually('every item at one left edge', async () => {
      const xs = new Set(Object.values((await serverBoard(docId)).items).map((i) => i.x));
      return xs.size === 1;
    });
    await ada.keyboard.press('Control+z');
    await eventually('the alignment undone', async () => {
      const now = (await serverBoard(docId)).items;
      return Object.entries(now).every(([id, i]) => i.x === noteBefore[id].x);
    });
    // The next undo takes back Ada's caption; Grace's move of the note was hers and stays.
    await ada.keyboard.press('Control+z');
    await eventually('the caption undone, the note where Grace put it', async () => {
      const now = (await serverBoard(docId)).items;
      const note = Object.entries(now).find(([, i]) => i.type === 'note');
      const [id] = note;
      return !Object.values(now).some((i) => i.caption) && now[id].x === noteBefore[id].x && now[id].y === noteBefore[id].y;
    });
    await ada.keyboard.press('Control+Shift+z');
    await eventually('the caption back', async () => Object.values((await serverBoard(docId)).items).some((i) => i.caption === 'Oak fronts'));
  });

  await check('an image resized by its corner keeps its shape', async () => {
    await ada.keyboard.press('Escape');
    const image = ada.locator('.board-item.type-image').first();
    await image.click();
    const id = await image.getAttribute('data-id');
    const start = (await serverBoard(docId)).items[id];
    const handle = ada.locator('.handle.se');
    await drag(ada, handle, 80, 10);
    await eventually('a larger image of the same shape', async () => {
      const now = (await serverBoard(docId)).items[id];
      return now.w > start.w + 40 && Math.abs(now.w / now.h - start.w / start.h) < 0.02;
    });
  });

  await check('grouped items select and move together; Delete removes for everyone', async () => {
    await ada.keyboard.press('Control+a');
    await ada.keyboard.press('Control+g');
    await ada.keyboard.press('Escape');
    await ada.locator('.board-item.type-image').first().click();
    await eventually('the whole group selected by one click', async () => (await ada.locator('.board-item[aria-selected="true"]').count()) === 3);
    const groups = new Set(Object.values((await serverBoard(docId)).items).map((i) => i.group));
    if (groups.size !== 1 || groups.has(undefined)) throw new Error(`the items are not one group: ${[...groups]}`);
    await ada.keyboard.press('Control+Shift+g');
    await ada.keyboard.press('Escape');
    await item(ada, 'Warm oak').click();
    await ada.keyboard.press('Control+d');
    await eventually('a copy of the note', async () => (await ada.locator('.board-item.type-note').count()) === 2);
    await ada.keyboard.press('Delete');
    await eventually('the copy gone from both boards', async () => (await grace.locator('.board-item.type-note').count()) === 1);
  });

  await check('the brief is shared: room, style and its palette', async () => {
    const brief = ada.getByRole('complementary', { name: 'Brief' });
    await brief.getByLabel('Room').selectOption({ label: 'Kitchen' });
    await brief.getByLabel('Style').selectOption({ label: 'Japandi' });
    await brief.getByRole('button', { name: /Use the Japandi palette/ }).click();
    await brief.getByLabel('Notes').fill('Family of four; lots of daylight.');
    const theirs = grace.getByRole('complementary', { name: 'Brief' });
    await eventually("the brief in Grace's browser", async () => (await theirs.getByLabel('Style').inputValue()) === 'japandi');
    await expectVisible(theirs.getByRole('list', { name: 'Palette' }).locator('code'), 'the palette');
    const server = await serverBoard(docId);
    if (server.brief.room_type !== 'kitchen' || !(server.brief.palette?.length > 2)) throw new Error(`the brief on the server is ${JSON.stringify(server.brief)}`);
    await ada.getByRole('toolbar', { name: 'Board tools' }).getByRole('button', { name: 'Swatch' }).click();
    await ada.keyboard.press('Escape');
    await eventually('a swatch in a colour of the palette', async () => {
      const s = Object.values((await serverBoard(docId)).items).find((i) => i.type === 'swatch');
      return !!s && server.brief.palette.includes(s.color);
    });
    await ada.keyboard.press('Escape');
    await ada.keyboard.press('Shift+1');
    await shot('board', ada);
  });

  await check('images are generated from the brief: placeholders fill in for both; more like one of them', async () => {
    await ada.keyboard.press('Escape');
    const brief = ada.getByRole('complementary', { name: 'Brief' });
    const drawn = (p) => p.locator('.board-item.type-image img').count();
    const before = await drawn(grace);
    await brief.getByLabel('Images').selectOption('3');
    await brief.getByLabel('Shape').selectOption({ label: 'Landscape' });
    await brief.getByRole('button', { name: 'Generate', exact: true }).click();
    await eventually("three new images in Grace's browser", async () => (await drawn(grace)) === before + 3, 30_000);
    await eventually('no placeholder left', async () => (await ada.locator('.board-placeholder').count()) === 0);
    const made = Object.entries((await serverBoard(docId)).items).filter(([, i]) => i.source?.provider === 'quire-builtin');
    if (made.length !== 3 || made.some(([, i]) => !i.asset || i.generation || Math.abs(i.w / i.h - 1.5) > 0.01)) {
      throw new Error(`the generated items are ${JSON.stringify(made)}`);
    }
    if (made.some(([, i]) => i.source.room_type !== 'kitchen' || i.source.style !== 'japandi' || i.source.qc?.round !== 1)) {
      throw new Error(`the generated items were not made from the brief: ${JSON.stringify(made.map(([, i]) => i.source))}`);
    }
    const [id] = made[0];
    await ada.locator(`.board-item[data-id="${id}"]`).click();
    await ada.getByRole('button', { name: 'About', exact: true }).click();
    const about = ada.getByRole('dialog', { name: 'About this image' });
    await expectVisible(about.getByText('quire-builtin'), 'the provider of the image');
    await expectVisible(about.getByText('Passed on the first try'), 'its quality control');
    await expectVisible(about.getByRole('list', { name: 'Palette it was painted in' }), "the brief's palette it was painted in");
    if (!made[0][1].source.prompt.includes('colour palette:')) throw new Error(`the prompt names no palette: ${made[0][1].source.prompt}`);
    await shot('board-generated-about', ada);
    await about.getByRole('button', { name: 'Close' }).click();
    await ada.getByRole('button', { name: /More like this/ }).click();
    const menu = ada.getByRole('menu', { name: 'More like this' });
    await expectVisible(menu.getByRole('menuitem', { name: /New takes on its prompt/ }), 'painting the prompt anew, for a generated image');
    await shot('board-more-like-this', ada);
    await menu.getByRole('menuitem', { name: /Close variations/ }).click();
    await eventually('four more like it, painted from it', async () => {
      const like = Object.values((await serverBoard(docId)).items).filter((i) => i.source?.like === id && i.asset);
      return like.length === 4 && like.every((i) => i.source.from_image?.asset === made[0][1].asset && i.source.from_image.strength === 0.35);
    }, 30_000);
    await eventually("Grace's browser draws them", async () => (await drawn(grace)) === before + 7, 30_000);
    const [likeId] = Object.entries((await serverBoard(docId)).items).find(([, i]) => i.source?.like === id);
    await ada.keyboard.press('Escape');
    await ada.locator(`.board-item[data-id="${likeId}"]`).click();
    await ada.getByRole('button', { name: 'About', exact: true }).click();
    await expectVisible(about.getByText('From an image on the board, kept close (strength 0.35)'), 'what it was painted from');
    await about.getByRole('button', { name: 'Close' }).click();
    // An uploaded image has no prompt: only variations of the image itself are offered.
    const uploaded = Object.entries((await serverBoard(docId)).items).find(([, i]) => i.type === 'image' && i.asset && !i.source);
    await ada.keyboard.press('Escape');
    await ada.locator(`.board-item[data-id="${uploaded[0]}"]`).click();
    await ada.getByRole('button', { name: /More like this/ }).click();
    await expectVisible(menu.getByRole('menuitem', { name: /Looser variations/ }), 'variations of an uploaded image');
    if (await menu.getByRole('menuitem', { name: /New takes/ }).count()) throw new Error('an uploaded image offers to paint a prompt it does not have');
    await ada.keyboard.press('Escape');
    await ada.keyboard.press('Escape');
    await ada.keyboard.press('Shift+1');
    await shot('board-generated', ada);
  });

  await check('a placeholder shows its progress, or why quality control refused it, and can be removed', async () => {
    const board = await serverBoard(docId);
    const gen = (status, progress, reason) => ({ context: 'ctx_e2e', status, progress, round: 2, ...(reason ? { reason } : {}) });
    board.items['gen-ctx_e2e-0'] = { type: 'image', x: -700, y: 0, w: 240, h: 160, z: 900, generation: gen('painting', 0.4) };
    board.items['gen-ctx_e2e-1'] = {
      type: 'image', x: -430, y: 0, w: 240, h: 160, z: 901,
      generation: gen('rejected', 0, 'image 2: a near-duplicate of item gen-1 (2 of 64 bits apart)'),
    };
    const r = await apiCall(ada, 'PUT', `/api/v1/documents/${docId}/content`, { format: 'json', content: board });
    if (r.status !== 204) throw new Error(`writing placeholders answered ${r.status}`);
    const painting = grace.locator('.board-item[data-id="gen-ctx_e2e-0"] .board-placeholder');
    await expectVisible(painting.getByText('Painting 40% (try 2)'), 'the progress of a placeholder');
    const rejected = ada.locator('.board-item[data-id="gen-ctx_e2e-1"] .board-placeholder');
    await expectVisible(rejected.getByText('Rejected by quality control'), 'a rejected placeholder');
    await expectVisible(rejected.getByText(/near-duplicate/), 'the reason it was rejected');
    // Close enough to read them: both selected, and the view fitted to the selection.
    await ada.keyboard.press('Shift+1');
    await ada.locator('.board-item[data-id="gen-ctx_e2e-0"]').click();
    await ada.locator('.board-item[data-id="gen-ctx_e2e-1"]').click({ modifiers: ['Shift'] });
    await ada.keyboard.press('Shift+1');
    await ada.keyboard.press('Escape');
    await shot('board-placeholders', ada);
    await rejected.getByRole('button', { name: 'Remove' }).click();
    await eventually('the rejected placeholder gone from both boards', async () => (await grace.locator('.board-item[data-id="gen-ctx_e2e-1"]').count()) === 0);
    await ada.locator('.board-item[data-id="gen-ctx_e2e-0"]').click();
    await ada.keyboard.press('Delete');
    await eventually('the other placeholder gone', async () => !(await serverBoard(docId)).items['gen-ctx_e2e-0']);
  });

  await check('an image replaced by another is kept as a version, listed and restored', async () => {
    await ada.keyboard.press('Escape');
    const board = await serverBoard(docId);
    const [id, before] = Object.entries(board.items).find(([, i]) => i.type === 'image' && i.asset && !i.source);
    await ada.keyboard.press('Shift+1');
    await ada.locator(`.board-item[data-id="${id}"]`).click();
    const chooser = ada.waitForEvent('filechooser');
    await ada.getByRole('toolbar', { name: 'Selection' }).getByRole('button', { name: 'Replace' }).click();
    const walnut = await painting(ada, 900, 600, '#5a3e2b', '#2e1f16');
    await (await chooser).setFiles([{ name: 'walnut.png', mimeType: 'image/png', buffer: walnut }]);
    let replaced;
    await eventually('the new image in its place, the old one a version', async () => {
      replaced = (await serverBoard(docId)).items[id];
      return replaced.asset !== before.asset && replaced.versions?.length === 1 && replaced.versions[0].asset === before.asset;
    });
    if (replaced.w !== before.w || Math.abs(replaced.w / replaced.h - 1.5) > 0.02) throw new Error(`the replaced image is ${replaced.w}x${replaced.h}`);
    if (replaced.versions[0].by !== 'Ada Lovelace' || replaced.versions[0].h !== before.h) throw new Error(`the version is ${JSON.stringify(replaced.versions[0])}`);
    await eventually("Grace's browser shows the new image", async () =>
      (await grace.locator(`.board-item[data-id="${id}"] img`).getAttribute('src'))?.includes(replaced.asset),
    );
    await ada.getByRole('button', { name: 'Versions (1)' }).click();
    const panel = ada.getByRole('dialog', { name: 'Versions of this image' });
    await expectVisible(panel.getByText(/Replaced .* by Ada Lovelace/), 'who replaced it');
    await eventually('both images drawn in the list', () => panel.locator('img').evaluateAll((imgs) => imgs.length === 2 && imgs.every((i) => i.complete && i.naturalWidth > 0)));
    await shot('board-versions', ada);
    await panel.getByRole('button', { name: 'Restore' }).click();
    await eventually('the earlier image back, the replacement kept as a version', async () => {
      const now = (await serverBoard(docId)).items[id];
      return now.asset === before.asset && now.h === before.h && now.versions?.length === 1 && now.versions[0].asset === replaced.asset;
    });
    await panel.getByRole('button', { name: 'Close' }).click();
  });

  await check("images on the board become the brief's references, and generations paint from them in turn", async () => {
    await ada.keyboard.press('Escape');
    await ada.keyboard.press('Shift+1');
    const board = await serverBoard(docId);
    const uploaded = Object.entries(board.items).filter(([, i]) => i.type === 'image' && i.asset && !i.source);
    const brief = ada.getByRole('complementary', { name: 'Brief' });
    for (const [id] of uploaded.slice(0, 2)) {
      await ada.locator(`.board-item[data-id="${id}"]`).click();
      await brief.getByRole('button', { name: 'Add the selected image' }).click();
    }
    const refs = uploaded.slice(0, 2).map(([, i]) => i.asset);
    const theirs = grace.getByRole('complementary', { name: 'Brief' });
    await eventually("both references in Grace's brief", async () => (await theirs.getByRole('list', { name: 'References' }).locator('img').count()) === 2);
    await brief.getByLabel('Images').selectOption('3');
    await brief.getByRole('button', { name: 'Generate', exact: true }).click();
    await eventually('three images painted from the references in turn', async () => {
      const from = Object.values((await serverBoard(docId)).items).filter((i) => i.source?.from_image && !i.source.like && i.asset);
      return from.length === 3 && from.filter((i) => i.source.from_image.asset === refs[0]).length === 2 && from.some((i) => i.source.from_image.asset === refs[1]);
    }, 30_000);
    await brief.getByRole('list', { name: 'References' }).scrollIntoViewIfNeeded();
    await shot('board-reference', ada);
    await brief.getByRole('button', { name: 'Remove reference 2' }).click();
    await brief.getByRole('button', { name: 'Remove reference 1' }).click();
    await eventually('the references gone for both', async () => !(await serverBoard(docId)).brief.references?.length && (await theirs.getByText('None. Select an image').count()) === 1);
  });

  await check('the board exports as PNG and as PDF', async () => {
    await ada.keyboard.press('Escape');
    const [png] = await Promise.all([ada.waitForEvent('download'), ada.getByRole('button', { name: 'PNG' }).click()]);
    if (png.suggestedFilename() !== 'Kitchen refresh.png') throw new Error(`the PNG is named ${png.suggestedFilename()}`);
    const bytes = readFileSync(await png.path());
    if (bytes.subarray(1, 4).toString() !== 'PNG' || bytes.length < 20_000) throw new Error(`the PNG is ${bytes.length} bytes`);
    const width = bytes.readUInt32BE(16);
    if (width < 800) throw new Error(`the PNG is ${width} pixels wide`);
    const [pdf] = await Promise.all([ada.waitForEvent('download'), ada.getByRole('button', { name: 'PDF' }).click()]);
    const doc = readFileSync(await pdf.path());
    if (doc.subarray(0, 5).toString() !== '%PDF-' || doc.length < 20_000) throw new Error(`the PDF is ${doc.length} bytes`);
  });

  await check('zoom follows the keys and the controls; the shortcuts are listed', async () => {
    const level = ada.locator('.zoom-level');
    await ada.keyboard.press('0');
    await eventually('100 %', async () => (await level.textContent()) === '100%');
    await ada.keyboard.press('+');
    await eventually('125 %', async () => (await level.textContent()) === '125%');
    await ada.getByRole('button', { name: 'Zoom out' }).click();
    await eventually('back to 100 %', async () => (await level.textContent()) === '100%');
    await ada.keyboard.press('?');
    await expectVisible(ada.getByRole('dialog', { name: 'Keyboard shortcuts' }), 'the shortcuts');
    await shot('board-shortcuts', ada);
    await ada.keyboard.press('Escape');
  });

  if (run.problems.length) throw new Error(run.problems.join('\n'));
  console.log('all ok');
} catch (e) {
  await shot('board-failure', ada).catch(() => {});
  await shot('board-failure-grace', grace).catch(() => {});
  console.error(`FAILED: ${run.step}: ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
