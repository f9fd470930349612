import { describe, expect, it } from 'vitest';
import { getSchema } from '@tiptap/core';
import { AllSelection, EditorState, TextSelection } from '@tiptap/pm/state';
import { LAZY_LAYOUT_BLOCKS, caretBlocks, prdExtensions } from './extensions';

const schema = getSchema(prdExtensions());
const para = (text: string) => ({ type: 'paragraph', content: [{ type: 'text', text }] });
const stateOf = (blocks: number) =>
  EditorState.create({
    schema,
    doc: schema.nodeFromJSON({ type: 'doc', content: Array.from({ length: blocks }, (_, i) => para(`p${i}`)) }),
  });
/** The text of the blocks marked as holding the selection. */
const marked = (state: EditorState) =>
  (caretBlocks(state)?.find() ?? []).map((d) => state.doc.nodeAt(d.from)?.textContent);

describe('lazy layout of long documents', () => {
  it('leaves a short document alone', () => {
    expect(caretBlocks(stateOf(LAZY_LAYOUT_BLOCKS - 1))).toBeNull();
  });

  it('keeps the blocks the selection is in laid out', () => {
    const long = stateOf(LAZY_LAYOUT_BLOCKS + 100);
    // Inside the 251st paragraph ("p250"): each paragraph "pN" is 2 + its text long.
    const pos = (n: number) => {
      let at = 0;
      for (let i = 0; i < n; i++) at += long.doc.child(i).nodeSize;
      return at + 2;
    };
    const caret = long.apply(long.tr.setSelection(TextSelection.create(long.doc, pos(250))));
    expect(marked(caret)).toEqual(['p250']);
    const range = long.apply(long.tr.setSelection(TextSelection.create(long.doc, pos(3), pos(400))));
    expect(marked(range)).toEqual(['p3', 'p400']);
    // Everything selected: the first block and the last.
    const all = long.apply(long.tr.setSelection(new AllSelection(long.doc)));
    expect(marked(all)).toEqual(['p0', `p${LAZY_LAYOUT_BLOCKS + 99}`]);
  });
});
