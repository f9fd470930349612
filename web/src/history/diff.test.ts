import { describe, expect, it } from 'vitest';
import { diffDocs, summary, textOf } from './diff';

const p = (text: string) => ({ type: 'paragraph', content: [{ type: 'text', text }] });
const h = (level: number, text: string) => ({ type: 'heading', attrs: { level }, content: [{ type: 'text', text }] });
const doc = (...content: object[]) => ({ type: 'doc', content });

describe('the difference between two versions', () => {
  it('keeps what stayed, and marks blocks added and removed', () => {
    const d = diffDocs(doc(h(2, 'Goals'), p('Fast.')), doc(h(2, 'Goals'), p('Fast.'), h(2, 'Risks'), p('Fraud.')));
    expect(d.map((b) => b.kind)).toEqual(['same', 'same', 'added', 'added']);
    const back = diffDocs(doc(h(2, 'Goals'), p('Fast.'), h(2, 'Risks')), doc(h(2, 'Goals'), p('Fast.')));
    expect(back.map((b) => b.kind)).toEqual(['same', 'same', 'removed']);
  });

  it('diffs the words of a block edited in place', () => {
    const d = diffDocs(doc(p('Cut checkout time in half.')), doc(p('Cut checkout time by a third.')));
    expect(d).toHaveLength(1);
    const only = d[0]!;
    if (only.kind !== 'changed') throw new Error(`not an edit: ${only.kind}`);
    const removed = only.words.filter((w) => w.removed).map((w) => w.value.trim());
    const added = only.words.filter((w) => w.added).map((w) => w.value.trim());
    expect(removed.join(' ')).toContain('half');
    expect(added.join(' ')).toContain('third');
  });

  it('does not take a heading edited into a paragraph for an edit', () => {
    const d = diffDocs(doc(h(1, 'Title')), doc(p('Title now a paragraph')));
    expect(d.map((b) => b.kind)).toEqual(['removed', 'added']);
    expect(summary(d)).toEqual({ added: 1, removed: 1, changed: 0 });
  });

  it('reads the text of nested blocks line by line', () => {
    const list = { type: 'bulletList', content: [{ type: 'listItem', content: [p('a')] }, { type: 'listItem', content: [p('b')] }] };
    expect(textOf(list)).toBe('a\nb');
    expect(textOf({ type: 'paragraph', content: [{ type: 'text', text: 'x' }, { type: 'hardBreak' }, { type: 'text', text: 'y' }] })).toBe('x\ny');
  });
});
