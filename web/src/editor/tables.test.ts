import { describe, expect, it } from 'vitest';
import { getSchema } from '@tiptap/core';
import { EditorState, Plugin, TextSelection } from '@tiptap/pm/state';
import { tableEditing, tableEditingKey } from '@tiptap/pm/tables';
import { cheapTableFixes, hasTable, prdExtensions } from './extensions';

const schema = getSchema(prdExtensions());
const para = (text: string) => ({ type: 'paragraph', content: [{ type: 'text', text }] });
const cell = (text: string) => ({ type: 'tableCell', content: [para(text)] });
const doc = (content: object[]) => schema.nodeFromJSON({ type: 'doc', content });

describe('tables in long documents', () => {
  it('are found without reading the text', () => {
    expect(hasTable(doc([para('a'), para('b')]))).toBe(false);
    const table = { type: 'table', content: [{ type: 'tableRow', content: [cell('x'), cell('y')] }] };
    expect(hasTable(doc([para('a'), { type: 'bulletList', content: [{ type: 'listItem', content: [para('b')] }] }, table]))).toBe(true);
  });

  it('are still mended, and a document without one is left alone', () => {
    const plugin = cheapTableFixes(tableEditing());
    expect(plugin).not.toBe(tableEditing());
    // The second row lacks a cell: the table is mended after the next change.
    const broken = {
      type: 'table',
      content: [
        { type: 'tableRow', content: [cell('a'), cell('b')] },
        { type: 'tableRow', content: [cell('c')] },
      ],
    };
    let state = EditorState.create({ schema, doc: doc([para('start'), broken]), plugins: [plugin] });
    state = state.apply(state.tr.insertText('!', 1));
    const rows: number[] = [];
    state.doc.descendants((n) => {
      if (n.type.name === 'tableRow') rows.push(n.childCount);
      return true;
    });
    expect(rows).toEqual([2, 2]);
    // Thousands of new paragraphs and no table: the mending is not even asked.
    const asked: (EditorState | undefined)[] = [];
    const spy = cheapTableFixes(new Plugin({ key: tableEditingKey, appendTransaction: (_t, old) => void asked.push(old) }));
    const long = EditorState.create({ schema, doc: doc([para('x')]), plugins: [spy] });
    long.apply(long.tr.replaceWith(0, long.doc.content.size, doc(Array.from({ length: 3000 }, (_, i) => para(`p ${i}`))).content));
    expect(asked).toEqual([]);
    // With a table, it reads the new document alone (no side-by-side walk).
    const withTable = EditorState.create({ schema, doc: doc([para('x'), broken]), plugins: [spy] });
    withTable.apply(withTable.tr.insertText('!', 1));
    expect(asked).toEqual([undefined]);
    // A change of the selection alone goes to it with the state before, as prosemirror-tables has it.
    withTable.apply(withTable.tr.setSelection(TextSelection.create(withTable.doc, 2)));
    expect(asked).toEqual([undefined, withTable]);
  });
});
