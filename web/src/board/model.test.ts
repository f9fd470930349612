import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { BoardModel, MAX_ITEMS, MAX_VERSIONS, readItem, replaceImage, restoreVersion, type ImageVersion } from './model';

/** Two people's copies of one board, each change sent to the other as the socket would. */
function pair() {
  const a = new Y.Doc();
  const b = new Y.Doc();
  a.on('update', (u: Uint8Array, origin: unknown) => origin !== 'remote' && Y.applyUpdate(b, u, 'remote'));
  b.on('update', (u: Uint8Array, origin: unknown) => origin !== 'remote' && Y.applyUpdate(a, u, 'remote'));
  return [new BoardModel(a), new BoardModel(b)] as const;
}

const note = { type: 'note' as const, x: 0, y: 0, w: 200, h: 120, text: 'Warm oak' };

describe('a board', () => {
  it('keeps both of two people changing different fields of one item at once', () => {
    const a = new Y.Doc();
    const b = new Y.Doc();
    const ma = new BoardModel(a);
    const [id] = ma.add([note]);
    Y.applyUpdate(b, Y.encodeStateAsUpdate(a));
    const mb = new BoardModel(b);
    // Neither has seen the other's change when making their own.
    ma.update({ [id!]: { x: 300, y: 40 } });
    mb.update({ [id!]: { caption: 'Kitchen wall' } });
    Y.applyUpdate(a, Y.encodeStateAsUpdate(b));
    Y.applyUpdate(b, Y.encodeStateAsUpdate(a));
    for (const m of [ma, mb]) {
      expect(m.items().get(id!)).toMatchObject({ x: 300, y: 40, caption: 'Kitchen wall', text: 'Warm oak' });
    }
  });

  it('writes items as the server reads them: each item a map of its fields', () => {
    const [a] = pair();
    const [id] = a.add([{ ...note, source: { prompt: 'a calm room', seed: 7 } }]);
    const items = a.content.get('items') as Y.Map<Y.Map<unknown>>;
    const item = items.get(id!)!;
    expect(item).toBeInstanceOf(Y.Map);
    expect(item.get('source')).toBeInstanceOf(Y.Map);
    expect(a.content.toJSON()).toEqual({
      brief: {},
      items: { [id!]: { type: 'note', x: 0, y: 0, w: 200, h: 120, z: 1, text: 'Warm oak', source: { prompt: 'a calm room', seed: 7 } } },
    });
  });

  it("undoes only this person's changes, a whole gesture at once", () => {
    const [a, b] = pair();
    const [id] = a.add([note]);
    b.update({ [id!]: { caption: 'by b' } });
    const end = a.beginGesture();
    for (let x = 1; x <= 20; x++) a.update({ [id!]: { x } });
    end();
    expect(b.items().get(id!)?.x).toBe(20);
    a.undo();
    // The whole drag went back; b's caption stays.
    expect(a.items().get(id!)).toMatchObject({ x: 0, caption: 'by b' });
    expect(b.items().get(id!)).toMatchObject({ x: 0, caption: 'by b' });
    // b's own undo takes back the caption only.
    b.undo();
    expect(a.items().get(id!)).toMatchObject({ x: 0, text: 'Warm oak' });
    expect(a.items().get(id!)?.caption).toBeUndefined();
    a.undo();
    expect(b.items().has(id!)).toBe(false);
    a.redo();
    expect(b.items().get(id!)?.text).toBe('Warm oak');
  });

  it('gives a new snapshot when something changed, keeping the objects of items that did not', () => {
    const [a, b] = pair();
    const [one, two] = a.add([note, { ...note, x: 500 }]);
    const before = b.items();
    const untouched = before.get(two!);
    a.update({ [one!]: { x: 10 } });
    const after = b.items();
    expect(after).not.toBe(before);
    expect(after.get(two!)).toBe(untouched);
    expect(after.get(one!)?.x).toBe(10);
    a.remove([one!]);
    expect(b.items().has(one!)).toBe(false);
  });

  it('writes only fields that differ, and removes fields set to undefined', () => {
    const [a] = pair();
    const [id] = a.add([{ ...note, caption: 'x' }]);
    let updates = 0;
    a.doc.on('update', () => updates++);
    a.update({ [id!]: { x: 0, text: 'Warm oak' } });
    expect(updates).toBe(0);
    a.update({ [id!]: { caption: undefined } });
    expect(updates).toBe(1);
    expect(a.items().get(id!)?.caption).toBeUndefined();
  });

  it('places new items above the others', () => {
    const [a] = pair();
    const [first, second] = a.add([note, note]);
    expect(a.items().get(second!)!.z).toBeGreaterThan(a.items().get(first!)!.z);
  });

  it('refuses more items than a board holds, saying what to do', () => {
    const [a] = pair();
    expect(() => a.add(Array.from({ length: MAX_ITEMS + 1 }, () => note))).toThrow(/at most 5,000 items/);
    expect(a.items().size).toBe(0);
  });

  it('keeps the brief, and hears of it from others', () => {
    const [a, b] = pair();
    a.setBrief({ room_type: 'kitchen', style: 'japandi', palette: ['#f1e9dc', '#2f2a24'] });
    expect(b.brief()).toEqual({ room_type: 'kitchen', style: 'japandi', palette: ['#f1e9dc', '#2f2a24'] });
    b.setBrief({ style: '' });
    expect(a.brief()).toEqual({ room_type: 'kitchen', palette: ['#f1e9dc', '#2f2a24'] });
  });

  it('reads what the server wrote, and leaves out what it cannot show', () => {
    expect(readItem('i1', { type: 'swatch', x: '3', color: '#ff0000' })).toEqual({ id: 'i1', type: 'swatch', x: 0, y: 0, w: 200, h: 200, z: 0, color: '#ff0000' });
    expect(readItem('i2', { type: 'video' })).toBeNull();
  });
});

describe('image versions', () => {
  const shown = { asset: 'a'.repeat(64), source: { prompt: 'oak' }, w: 300, h: 200 };
  const at = new Date('2026-12-05T10:00:00Z');

  it('replacing keeps what the item showed, at its size, with who and when', () => {
    const change = replaceImage(shown, { asset: 'b'.repeat(64), width: 1000, height: 1000 }, 'Ada', at);
    expect(change).toEqual({
      asset: 'b'.repeat(64),
      source: undefined,
      h: 300,
      versions: [{ asset: 'a'.repeat(64), w: 300, h: 200, source: { prompt: 'oak' }, replaced_at: '2026-12-05T10:00:00.000Z', by: 'Ada' }],
    });
  });

  it('restoring swaps an earlier image back, keeping the current one, and no image twice', () => {
    const replaced = { ...shown, ...replaceImage(shown, { asset: 'b'.repeat(64), width: 1000, height: 1000 }, 'Ada', at) } as typeof shown & { versions: ImageVersion[] };
    const back = restoreVersion(replaced, 0, 'Grace', at)!;
    expect(back.asset).toBe('a'.repeat(64));
    expect(back.source).toEqual({ prompt: 'oak' });
    expect([back.w, back.h]).toEqual([300, 200]);
    expect(back.versions!.map((v) => v.asset)).toEqual(['b'.repeat(64)]);
    expect(restoreVersion(replaced, 5, 'Grace', at)).toBeNull();
  });

  it('keeps at most MAX_VERSIONS, dropping the oldest', () => {
    let item: Parameters<typeof replaceImage>[0] = { ...shown };
    for (let i = 0; i < MAX_VERSIONS + 5; i++) {
      item = { ...item, ...replaceImage(item, { asset: i.toString(16).padStart(64, '0'), width: 10, height: 10 }, 'Ada', at) } as typeof item;
    }
    expect(item.versions).toHaveLength(MAX_VERSIONS);
    expect(item.versions![MAX_VERSIONS - 1]!.asset).toBe((MAX_VERSIONS + 3).toString(16).padStart(64, '0'));
  });

  it('reads versions from the document, leaving out malformed ones', () => {
    const item = readItem('i1', { type: 'image', versions: [{ asset: 'c'.repeat(64), w: 10, h: 20 }, { asset: 5 }, { asset: 'd'.repeat(64) }] });
    expect(item!.versions).toEqual([{ asset: 'c'.repeat(64), w: 10, h: 20 }]);
  });
});
